//! The README cannot drift: its shell sessions (the code blocks marked `<!-- session -->`)
//! run, verbatim, in one shell against a fresh `minilvb` binary with no configuration
//! (in its own working directory, where its database and generated secrets land), and
//! every answer the README shows after a command (`#   → ...`, where `…` stands for
//! anything) must be what that command printed. Only the port differs: the server listens
//! on one the system picked, so `127.0.0.1:8080` is replaced by it. Every `curl` example
//! in the README must be in such a session.

mod common;

use common::*;
use std::path::Path;

const MARK: &str = "<!-- session -->";
const STEP: &str = "\u{1e}STEP\u{1e}";

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// Every fenced block: whether a session mark precedes it, and its text.
fn blocks(md: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut lines = md.lines().peekable();
    let mut prev = "";
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            let marked = prev.trim() == MARK;
            let mut body = String::new();
            for l in lines.by_ref() {
                if l.starts_with("```") {
                    break;
                }
                body.push_str(l);
                body.push('\n');
            }
            out.push((marked, body));
            prev = "";
            continue;
        }
        if !line.trim().is_empty() {
            prev = line;
        }
    }
    out
}

/// One command and the answer the README shows for it, if any.
struct Step {
    command: String,
    shown: Option<String>,
}

fn steps(block: &str) -> Vec<Step> {
    let mut steps: Vec<Step> = Vec::new();
    for line in block.lines() {
        let t = line.trim();
        if let Some(shown) = t.strip_prefix("#   → ") {
            let last = steps.last_mut().expect("an answer follows a command");
            assert!(last.shown.is_none(), "two answers for {}", last.command);
            last.shown = Some(shown.to_string());
        } else if !t.is_empty() && !t.starts_with('#') {
            steps.push(Step {
                command: line.to_string(),
                shown: None,
            });
        }
    }
    steps
}

/// Whether `text` is `pattern` with each `…` standing for any run of characters.
fn matches(pattern: &str, text: &str) -> bool {
    let parts: Vec<&str> = pattern.split('…').collect();
    if parts.len() == 1 {
        return pattern == text;
    }
    let (first, last) = (parts[0], parts[parts.len() - 1]);
    if !text.starts_with(first) || !text[first.len()..].ends_with(last) {
        return false;
    }
    let mut rest = &text[first.len()..text.len() - last.len()];
    for part in &parts[1..parts.len() - 1] {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    true
}

#[test]
fn the_wildcard_matcher() {
    assert!(matches("a…c", "abbbc"));
    assert!(matches("a…b…c", "a1b2c"));
    assert!(!matches("a…b…c", "a1c"));
    assert!(!matches("a…c", "abcd"));
    assert!(matches("abc", "abc"));
    assert!(!matches("ab…ba", "aba"));
}

#[test]
fn every_curl_example_is_in_a_session() {
    let all = blocks(&readme());
    assert!(all.iter().filter(|(m, _)| *m).count() >= 3);
    for (marked, body) in &all {
        if body.contains("curl -s") {
            assert!(marked, "a curl example outside a session:\n{body}");
        }
    }
}

#[actix_rt::test]
async fn the_readme_sessions_run_as_shown() {
    let have = |tool: &str| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !(have("curl") && have("bash") && have("sed")) {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl, bash and sed must be installed in CI (.ci/run installs curl)"
        );
        eprintln!("skipped: the README sessions need curl, bash and sed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("minilvb_readme_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let server = ChildServer::start_in(Some(&dir), &[]).await;
    let steps: Vec<Step> = blocks(&readme())
        .into_iter()
        .filter(|(marked, _)| *marked)
        .flat_map(|(_, body)| steps(&body))
        .collect();
    assert!(
        steps.len() > 20,
        "the sessions hold {} commands",
        steps.len()
    );
    let mut script = String::from("set -u\n");
    for s in &steps {
        script.push_str(
            &s.command
                .replace("127.0.0.1:8080", &format!("127.0.0.1:{}", server.port)),
        );
        script.push_str(&format!("\nprintf '\\n{STEP}\\n'\n"));
    }
    let out = tokio::task::spawn_blocking({
        let dir = dir.clone();
        move || {
            std::process::Command::new("bash")
                .arg("-c")
                .arg(script)
                .current_dir(dir)
                .output()
                .unwrap()
        }
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let printed: Vec<&str> = stdout.split(&format!("\n{STEP}\n")).collect();
    assert_eq!(
        printed.len(),
        steps.len() + 1,
        "every command ran; stderr:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for (s, got) in steps.iter().zip(&printed) {
        let got = got.trim();
        match &s.shown {
            Some(shown) => assert!(
                matches(shown, got),
                "README shows, after\n  {}\nthe answer\n  {shown}\nbut it printed\n  {got}",
                s.command
            ),
            None => assert!(
                got.is_empty(),
                "`{}` printed {got:?}, which the README does not show",
                s.command
            ),
        }
    }
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
}
