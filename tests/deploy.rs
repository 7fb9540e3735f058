//! The container deployment, checked against the code it deploys: the Dockerfile,
//! docker-compose.yml, deploy/nginx-rtmp.conf, deploy/nginx-rtmp.Dockerfile,
//! deploy/.env.example and the .dockerignore files.
//!
//! No Docker engine is needed. The compose file is read with a small reader for the part of
//! YAML it uses (block mappings and sequences, flow sequences of scalars, quoted and plain
//! scalars); the reader refuses anything else, so the file stays within what it understands.
//! Values are interpolated from deploy/.env.example as compose does (`${NAME}`,
//! `${NAME:-default}`, `${NAME:?message}`), with stand-ins for the secrets it leaves empty.

mod common;

use common::*;
use minilvb::Config;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::Duration;

// ---------------------------------------------------------------------------------------------
// Files

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// A reader for the YAML subset of docker-compose.yml

#[derive(Debug, Clone, PartialEq)]
enum Yaml {
    Null,
    Str(String),
    Seq(Vec<Yaml>),
    Map(Vec<(String, Yaml)>),
}

impl Yaml {
    fn get(&self, key: &str) -> Option<&Yaml> {
        match self {
            Yaml::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The value at `path`; panics naming the path when it is missing.
    fn at(&self, path: &[&str]) -> &Yaml {
        let mut cur = self;
        for (n, key) in path.iter().enumerate() {
            cur = cur
                .get(key)
                .unwrap_or_else(|| panic!("docker-compose.yml: no {}", path[..=n].join(".")));
        }
        cur
    }

    fn str(&self) -> &str {
        match self {
            Yaml::Str(s) => s,
            other => panic!("expected a string, found {other:?}"),
        }
    }

    fn seq(&self) -> &[Yaml] {
        match self {
            Yaml::Seq(items) => items,
            other => panic!("expected a sequence, found {other:?}"),
        }
    }

    fn map(&self) -> &[(String, Yaml)] {
        match self {
            Yaml::Map(entries) => entries,
            other => panic!("expected a mapping, found {other:?}"),
        }
    }

    /// Applies `f` to every string, keys excluded.
    fn map_strings(&self, f: &mut dyn FnMut(&str) -> String) -> Yaml {
        match self {
            Yaml::Null => Yaml::Null,
            Yaml::Str(s) => Yaml::Str(f(s)),
            Yaml::Seq(items) => Yaml::Seq(items.iter().map(|v| v.map_strings(f)).collect()),
            Yaml::Map(entries) => Yaml::Map(
                entries
                    .iter()
                    .map(|(k, v)| (k.clone(), v.map_strings(f)))
                    .collect(),
            ),
        }
    }
}

struct Line {
    no: usize,
    indent: usize,
    text: String,
}

/// Cuts a comment: `#` at the start or after a space, outside quotes.
fn strip_yaml_comment(s: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    for (i, c) in s.char_indices() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if (c == '"' || c == '\'') && matches!(prev, ' ' | '[' | ',') => quote = Some(c),
            None if c == '#' && prev == ' ' => return &s[..i],
            None => {}
        }
        prev = c;
    }
    s
}

fn parse_yaml(src: &str) -> Yaml {
    let mut lines: Vec<Line> = Vec::new();
    for (n, raw) in src.lines().enumerate() {
        let text = strip_yaml_comment(raw).trim_end();
        if text.trim().is_empty() {
            continue;
        }
        let indent = text.len() - text.trim_start_matches(' ').len();
        assert!(
            !text[indent..].starts_with('\t'),
            "line {}: tab indentation",
            n + 1
        );
        lines.push(Line {
            no: n + 1,
            indent,
            text: text[indent..].to_string(),
        });
    }
    assert!(!lines.is_empty(), "empty YAML document");
    assert_eq!(lines[0].indent, 0, "line {}: indented", lines[0].no);
    let mut i = 0;
    let doc = parse_block(&mut lines, &mut i, 0);
    if let Some(l) = lines.get(i) {
        panic!("line {}: unexpected indentation", l.no);
    }
    doc
}

fn is_seq_item(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

fn parse_block(lines: &mut [Line], i: &mut usize, indent: usize) -> Yaml {
    if is_seq_item(&lines[*i].text) {
        parse_seq(lines, i, indent)
    } else {
        parse_map(lines, i, indent)
    }
}

fn parse_seq(lines: &mut [Line], i: &mut usize, indent: usize) -> Yaml {
    let mut items = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent && is_seq_item(&lines[*i].text) {
        let rest = lines[*i].text[1..].trim_start().to_string();
        if rest.is_empty() {
            *i += 1;
            assert!(
                *i < lines.len() && lines[*i].indent > indent,
                "line {}: empty sequence item",
                lines[*i - 1].no
            );
            let inner = lines[*i].indent;
            items.push(parse_block(lines, i, inner));
        } else if split_key(&rest).is_some() {
            // `- key: value`: a mapping whose first entry shares the item's line.
            let offset = lines[*i].text.len() - rest.len();
            lines[*i].indent += offset;
            lines[*i].text = rest;
            let inner = lines[*i].indent;
            items.push(parse_map(lines, i, inner));
        } else {
            items.push(parse_scalar(&rest, lines[*i].no));
            *i += 1;
        }
    }
    Yaml::Seq(items)
}

fn parse_map(lines: &mut [Line], i: &mut usize, indent: usize) -> Yaml {
    let mut entries: Vec<(String, Yaml)> = Vec::new();
    while *i < lines.len() && lines[*i].indent == indent && !is_seq_item(&lines[*i].text) {
        let no = lines[*i].no;
        let (key, value) = split_key(&lines[*i].text)
            .unwrap_or_else(|| panic!("line {no}: expected `key: value`"));
        *i += 1;
        let v = if !value.is_empty() {
            parse_scalar(&value, no)
        } else if *i < lines.len() && lines[*i].indent > indent {
            let inner = lines[*i].indent;
            parse_block(lines, i, inner)
        } else if *i < lines.len() && lines[*i].indent == indent && is_seq_item(&lines[*i].text) {
            parse_seq(lines, i, indent)
        } else {
            Yaml::Null
        };
        assert!(
            entries.iter().all(|(k, _)| *k != key),
            "line {no}: duplicate key {key}"
        );
        entries.push((key, v));
    }
    Yaml::Map(entries)
}

/// `key: value` or `key:` with a plain key; `None` when the text is a scalar.
fn split_key(text: &str) -> Option<(String, String)> {
    if text.starts_with(['"', '\'', '[', '{']) {
        return None;
    }
    let bytes = text.as_bytes();
    let pos = (0..bytes.len())
        .find(|&p| bytes[p] == b':' && (p + 1 == bytes.len() || bytes[p + 1] == b' '))?;
    let key = &text[..pos];
    if key.is_empty() || key.contains(' ') {
        return None;
    }
    Some((key.to_string(), text[pos + 1..].trim().to_string()))
}

fn parse_scalar(text: &str, no: usize) -> Yaml {
    let t = text.trim();
    if let Some(inner) = t.strip_prefix('[') {
        let inner = inner
            .strip_suffix(']')
            .unwrap_or_else(|| panic!("line {no}: flow sequence must end on its line"));
        if inner.trim().is_empty() {
            return Yaml::Seq(Vec::new());
        }
        let mut items = Vec::new();
        let mut quote: Option<char> = None;
        let mut start = 0;
        for (p, c) in inner.char_indices() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == ',' => {
                    items.push(parse_scalar(&inner[start..p], no));
                    start = p + 1;
                }
                None if matches!(c, '[' | '{') => panic!("line {no}: nested flow collection"),
                None => {}
            }
        }
        items.push(parse_scalar(&inner[start..], no));
        return Yaml::Seq(items);
    }
    if t == "{}" {
        return Yaml::Map(Vec::new());
    }
    if let Some(inner) = t.strip_prefix('"') {
        let inner = inner
            .strip_suffix('"')
            .unwrap_or_else(|| panic!("line {no}: unterminated double quote"));
        let mut out = String::new();
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            if c != '\\' {
                out.push(c);
                continue;
            }
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(c @ ('\\' | '"' | '/')) => out.push(c),
                other => panic!("line {no}: unsupported escape \\{other:?}"),
            }
        }
        return Yaml::Str(out);
    }
    if let Some(inner) = t.strip_prefix('\'') {
        let inner = inner
            .strip_suffix('\'')
            .unwrap_or_else(|| panic!("line {no}: unterminated single quote"));
        return Yaml::Str(inner.replace("''", "'"));
    }
    assert!(
        !t.starts_with(['{', '|', '>', '&', '*', '!', '%', '@', '`']),
        "line {no}: YAML feature outside the subset this test reads: {t}"
    );
    Yaml::Str(t.to_string())
}

// ---------------------------------------------------------------------------------------------
// Compose interpolation and .env files

/// `NAME=value` lines; no quotes, no inline comments (compose and shells read them alike).
fn parse_env_file(src: &str) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (n, line) in src.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (k, v) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("deploy/.env.example line {}: not NAME=value", n + 1));
        assert!(
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'),
            "deploy/.env.example line {}: bad name {k:?}",
            n + 1
        );
        assert!(
            !v.contains(['"', '\'', '#', ' ', '$']),
            "deploy/.env.example line {}: keep values plain (no quotes, spaces, # or $)",
            n + 1
        );
        assert!(
            vars.insert(k.to_string(), v.to_string()).is_none(),
            "deploy/.env.example: {k} twice"
        );
    }
    vars
}

/// A reference `${NAME...}` in a compose string.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct VarRef {
    name: String,
    required: bool,
}

/// Compose's interpolation of one string. Bare `$NAME` is refused: braces only.
fn interpolate(s: &str, vars: &BTreeMap<String, String>, refs: &mut BTreeSet<VarRef>) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(p) = rest.find('$') {
        out.push_str(&rest[..p]);
        let after = &rest[p + 1..];
        if let Some(r) = after.strip_prefix('$') {
            out.push('$');
            rest = r;
            continue;
        }
        let body_end = after
            .strip_prefix('{')
            .and_then(|b| b.find('}'))
            .unwrap_or_else(|| panic!("{s:?}: use ${{NAME}}, not a bare $"));
        let body = &after[1..=body_end];
        rest = &after[body_end + 2..];
        assert!(!body.contains('$'), "{s:?}: nested interpolation");
        let name_end = body
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(body.len());
        let (name, op) = body.split_at(name_end);
        let value = vars.get(name).filter(|v| !v.is_empty());
        let required = op.starts_with(":?") || op.starts_with('?');
        refs.insert(VarRef {
            name: name.to_string(),
            required,
        });
        let resolved = if op.is_empty() {
            value.cloned().unwrap_or_default()
        } else if let Some(default) = op.strip_prefix(":-") {
            value.cloned().unwrap_or_else(|| default.to_string())
        } else if let Some(message) = op.strip_prefix(":?") {
            value
                .cloned()
                .unwrap_or_else(|| panic!("compose would refuse: {name}: {message}"))
        } else {
            panic!("{s:?}: unsupported interpolation ${{{body}}}");
        };
        out.push_str(&resolved);
    }
    out.push_str(rest);
    out
}

// ---------------------------------------------------------------------------------------------
// Dockerfiles

#[derive(Debug, Clone)]
struct Instr {
    cmd: String,
    args: String,
}

/// Instructions with continuation lines joined and comments dropped.
fn parse_dockerfile(src: &str) -> Vec<Instr> {
    let mut out = Vec::new();
    let mut cur = String::new();
    for line in src.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        if let Some(part) = t.strip_suffix('\\') {
            cur.push_str(part);
            cur.push(' ');
            continue;
        }
        cur.push_str(t);
        let full = std::mem::take(&mut cur);
        let (cmd, args) = full.trim().split_once(' ').unwrap_or((full.trim(), ""));
        out.push(Instr {
            cmd: cmd.to_ascii_uppercase(),
            args: args.trim().to_string(),
        });
    }
    assert!(cur.is_empty(), "Dockerfile ends inside a continuation");
    out
}

/// Instructions of the last stage (after the last FROM), and that FROM's arguments.
fn final_stage(instrs: &[Instr]) -> (&str, &[Instr]) {
    let from = instrs
        .iter()
        .rposition(|i| i.cmd == "FROM")
        .expect("a FROM");
    (&instrs[from].args, &instrs[from + 1..])
}

fn all<'a>(instrs: &'a [Instr], cmd: &str) -> Vec<&'a str> {
    instrs
        .iter()
        .filter(|i| i.cmd == cmd)
        .map(|i| i.args.as_str())
        .collect()
}

fn one<'a>(instrs: &'a [Instr], cmd: &str) -> &'a str {
    let found = all(instrs, cmd);
    assert_eq!(found.len(), 1, "exactly one {cmd} in the final stage");
    found[0]
}

/// `ENV A=1 B="x y"` pairs, in order.
fn env_pairs(instrs: &[Instr]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for args in all(instrs, "ENV") {
        let mut tokens = Vec::new();
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        for c in args.chars() {
            match quote {
                Some(q) if c == q => quote = None,
                Some(_) => cur.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c.is_whitespace() => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                }
                None => cur.push(c),
            }
        }
        if !cur.is_empty() {
            tokens.push(cur);
        }
        for t in tokens {
            let (k, v) = t
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {args}: use NAME=value"));
            out.push((k.to_string(), v.to_string()));
        }
    }
    out
}

fn json_array(args: &str) -> Vec<String> {
    serde_json::from_str(args)
        .unwrap_or_else(|e| panic!("not an exec-form JSON array: {args}: {e}"))
}

/// The HEALTHCHECK's options and its exec-form command.
fn healthcheck(instrs: &[Instr]) -> (BTreeMap<String, String>, Vec<String>) {
    let args = one(instrs, "HEALTHCHECK");
    let (opts, cmd) = args.split_once("CMD ").expect("HEALTHCHECK ... CMD [...]");
    let opts = opts
        .split_whitespace()
        .map(|o| {
            let (k, v) = o.trim_start_matches("--").split_once('=').unwrap();
            (k.to_string(), v.to_string())
        })
        .collect();
    (opts, json_array(cmd.trim()))
}

/// The path of `GET /path HTTP/1.x` in a health check command.
fn healthcheck_path(cmd: &[String]) -> String {
    let script = cmd.join(" ");
    let after = script
        .split("GET ")
        .nth(1)
        .expect("the health check sends a GET");
    after.split(' ').next().unwrap().to_string()
}

/// Sources of the COPY instructions that read the build context (not `--from=`).
fn context_sources(instrs: &[Instr]) -> Vec<String> {
    let mut out = Vec::new();
    for args in all(instrs, "COPY") {
        if args.contains("--from=") {
            continue;
        }
        let words: Vec<&str> = args
            .split_whitespace()
            .filter(|w| !w.starts_with("--"))
            .collect();
        out.extend(words[..words.len() - 1].iter().map(|w| w.to_string()));
    }
    out
}

/// Whether a top-level path of the build context survives `.dockerignore` (last match wins;
/// the patterns used here are names, `*`, and `!` exceptions).
fn dockerignore_allows(ignore: &str, path: &str) -> bool {
    let first = path.trim_start_matches("./").split('/').next().unwrap();
    let mut allowed = true;
    for pattern in ignore.lines().map(str::trim) {
        if pattern.is_empty() || pattern.starts_with('#') {
            continue;
        }
        let (negate, p) = match pattern.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, pattern),
        };
        let p = p.trim_start_matches('/').trim_end_matches('/');
        assert!(
            p == "*" || !p.contains(['*', '?', '[', '/']),
            ".dockerignore pattern {pattern:?} is beyond what this test evaluates"
        );
        if p == "*" || p == first {
            allowed = negate;
        }
    }
    allowed
}

// ---------------------------------------------------------------------------------------------
// nginx configuration

#[derive(Debug)]
struct Directive {
    name: String,
    args: Vec<String>,
    block: Option<Vec<Directive>>,
}

fn parse_nginx(src: &str) -> Vec<Directive> {
    let mut tokens: Vec<String> = Vec::new();
    for line in src.lines() {
        let mut cur = String::new();
        let mut quote: Option<char> = None;
        for c in line.chars() {
            match quote {
                Some(q) if c == q => {
                    quote = None;
                    tokens.push(std::mem::take(&mut cur));
                }
                Some(_) => cur.push(c),
                None if c == '"' || c == '\'' => quote = Some(c),
                None if c == '#' => break,
                None if c.is_whitespace() || matches!(c, '{' | '}' | ';') => {
                    if !cur.is_empty() {
                        tokens.push(std::mem::take(&mut cur));
                    }
                    if !c.is_whitespace() {
                        tokens.push(c.to_string());
                    }
                }
                None => cur.push(c),
            }
        }
        assert!(quote.is_none(), "nginx-rtmp.conf: quote across lines");
        if !cur.is_empty() {
            tokens.push(cur);
        }
    }
    let mut pos = 0;
    let top = nginx_block(&tokens, &mut pos);
    assert_eq!(pos, tokens.len(), "nginx-rtmp.conf: unbalanced braces");
    top
}

fn nginx_block(tokens: &[String], pos: &mut usize) -> Vec<Directive> {
    let mut out = Vec::new();
    while *pos < tokens.len() && tokens[*pos] != "}" {
        let name = tokens[*pos].clone();
        *pos += 1;
        let mut args = Vec::new();
        while !matches!(tokens[*pos].as_str(), ";" | "{") {
            args.push(tokens[*pos].clone());
            *pos += 1;
        }
        let block = if tokens[*pos] == "{" {
            *pos += 1;
            let inner = nginx_block(tokens, pos);
            assert_eq!(tokens[*pos], "}", "nginx-rtmp.conf: unclosed block {name}");
            *pos += 1;
            Some(inner)
        } else {
            *pos += 1;
            None
        };
        out.push(Directive { name, args, block });
    }
    out
}

fn nginx_all<'a>(ds: &'a [Directive], name: &str) -> Vec<&'a Directive> {
    ds.iter().filter(|d| d.name == name).collect()
}

fn nginx_one<'a>(ds: &'a [Directive], name: &str) -> &'a Directive {
    let found = nginx_all(ds, name);
    assert_eq!(
        found.len(),
        1,
        "nginx-rtmp.conf: exactly one {name} expected"
    );
    found[0]
}

fn inner(d: &Directive) -> &[Directive] {
    d.block
        .as_deref()
        .unwrap_or_else(|| panic!("nginx-rtmp.conf: {} has no block", d.name))
}

fn arg<'a>(ds: &'a [Directive], name: &str) -> &'a str {
    let d = nginx_one(ds, name);
    assert_eq!(
        d.args.len(),
        1,
        "nginx-rtmp.conf: {name} takes one argument here"
    );
    &d.args[0]
}

fn listen_port(d: &Directive) -> u16 {
    let a = &d.args[0];
    a.rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap_or_else(|_| panic!("listen {a}"))
}

fn nginx_seconds(v: &str) -> u64 {
    if let Some(m) = v.strip_suffix('m') {
        m.parse::<u64>().unwrap() * 60
    } else {
        v.trim_end_matches('s').parse().unwrap()
    }
}

// ---------------------------------------------------------------------------------------------
// The deployment, read once per test

const CALLBACKS: [&str; 4] = [
    "on_publish",
    "on_publish_done",
    "on_update",
    "on_record_done",
];

struct Deploy {
    /// deploy/.env.example, with stand-ins for the values it leaves to the operator.
    vars: BTreeMap<String, String>,
    /// Variables the compose file references.
    refs: BTreeSet<VarRef>,
    compose_raw: Yaml,
    compose: Yaml,
    docker: Vec<Instr>,
    nginx_docker: Vec<Instr>,
    nginx: Vec<Directive>,
}

fn stand_in(name: &str) -> String {
    match name {
        "PUBLIC_HOST" => "203.0.113.7".into(),
        _ => format!("standin{}", name.to_ascii_lowercase().replace('_', "")),
    }
}

fn deploy() -> Deploy {
    let example = parse_env_file(&read("deploy/.env.example"));
    let compose_raw = parse_yaml(&read("docker-compose.yml"));
    // The values compose would refuse to start without, and the example leaves to the
    // operator, get stand-ins.
    let mut refs = BTreeSet::new();
    compose_raw.map_strings(&mut |s| {
        refs.extend(scan_refs(s));
        s.to_string()
    });
    let mut vars = example.clone();
    for v in &refs {
        if v.required && vars.get(&v.name).is_none_or(|x| x.is_empty()) {
            vars.insert(v.name.clone(), stand_in(&v.name));
        }
    }
    let mut seen = BTreeSet::new();
    let compose = compose_raw.map_strings(&mut |s| interpolate(s, &vars, &mut seen));
    assert_eq!(refs, seen);
    Deploy {
        vars,
        refs,
        compose_raw,
        compose,
        docker: parse_dockerfile(&read("Dockerfile")),
        nginx_docker: parse_dockerfile(&read("deploy/nginx-rtmp.Dockerfile")),
        nginx: parse_nginx(&read("deploy/nginx-rtmp.conf")),
    }
}

/// The `${NAME...}` references of a string, without resolving them.
fn scan_refs(s: &str) -> Vec<VarRef> {
    s.split("${")
        .skip(1)
        .map(|b| {
            let body = b.split('}').next().unwrap();
            let end = body
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(body.len());
            VarRef {
                name: body[..end].to_string(),
                required: body[end..].starts_with(":?") || body[end..].starts_with('?'),
            }
        })
        .collect()
}

impl Deploy {
    fn service(&self, name: &str) -> &Yaml {
        self.compose.at(&["services", name])
    }

    fn env_of(&self, service: &str) -> Vec<(String, String)> {
        match self.service(service).get("environment") {
            None => Vec::new(),
            Some(env) => env
                .map()
                .iter()
                .map(|(k, v)| (k.clone(), v.str().to_string()))
                .collect(),
        }
    }

    /// The server's environment: the image's ENV overlaid by compose's `environment`.
    fn minilvb_env(&self) -> Vec<(String, String)> {
        let mut env: BTreeMap<String, String> =
            env_pairs(final_stage(&self.docker).1).into_iter().collect();
        env.extend(self.env_of("minilvb"));
        env.into_iter().collect()
    }

    fn config(&self) -> Config {
        load_config(&self.minilvb_env())
    }

    /// (host port, container port) of each `ports:` entry of a service.
    fn published(&self, service: &str) -> Vec<(u16, u16)> {
        self.service(service)
            .at(&["ports"])
            .seq()
            .iter()
            .map(|p| {
                let spec = p.str().split('/').next().unwrap();
                let parts: Vec<&str> = spec.split(':').collect();
                assert!(parts.len() >= 2, "publish {spec}: name the host port");
                let n = parts.len();
                (parts[n - 2].parse().unwrap(), parts[n - 1].parse().unwrap())
            })
            .collect()
    }

    fn host_port_for(&self, service: &str, container: u16) -> u16 {
        self.published(service)
            .into_iter()
            .find(|(_, c)| *c == container)
            .unwrap_or_else(|| panic!("{service} does not publish container port {container}"))
            .0
    }

    fn ipv4(&self, service: &str) -> Ipv4Addr {
        let networks = self.service(service).at(&["networks"]).map();
        assert_eq!(networks.len(), 1, "{service}: one network");
        networks[0].1.at(&["ipv4_address"]).str().parse().unwrap()
    }

    fn rtmp_server(&self) -> &[Directive] {
        inner(nginx_one(inner(nginx_one(&self.nginx, "rtmp")), "server"))
    }

    fn rtmp_app(&self) -> &Directive {
        nginx_one(self.rtmp_server(), "application")
    }

    fn http_server(&self) -> &[Directive] {
        inner(nginx_one(inner(nginx_one(&self.nginx, "http")), "server"))
    }

    /// The `location` whose `alias` is `dir` (plus a slash).
    fn location_serving(&self, dir: &str) -> String {
        let want = format!("{}/", dir.trim_end_matches('/'));
        let found: Vec<&Directive> = nginx_all(self.http_server(), "location")
            .into_iter()
            .filter(|l| {
                nginx_all(inner(l), "alias")
                    .first()
                    .is_some_and(|a| a.args[0] == want)
            })
            .collect();
        assert_eq!(found.len(), 1, "nginx serves {dir} at exactly one location");
        found[0].args.last().unwrap().clone()
    }
}

/// `Config::load_from` without a `minilvb.toml` from the working directory.
fn load_config(env: &[(String, String)]) -> Config {
    try_load_config(env).unwrap_or_else(|e| panic!("{e}"))
}

fn try_load_config(env: &[(String, String)]) -> Result<Config, String> {
    // An empty file, so that a developer's ./minilvb.toml is not read.
    let empty = Path::new(env!("CARGO_TARGET_TMPDIR")).join("deploy-empty.toml");
    std::fs::write(&empty, "").unwrap();
    Config::load_from(Some(&empty), env).map_err(|e| e.to_string())
}

fn split_host_port(hostport: &str) -> (&str, u16) {
    let (h, p) = hostport.rsplit_once(':').expect("host:port");
    (h, p.parse().unwrap())
}

/// `http://host:port/path` → (host, port, path).
fn split_url(url: &str) -> (&str, u16, &str) {
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{url}: http://"));
    let (hostport, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let (h, p) = split_host_port(hostport);
    (h, p, path)
}

fn duration_secs(v: &str) -> u64 {
    let mut total = 0;
    let mut num = String::new();
    for c in v.chars() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        let n: u64 = std::mem::take(&mut num).parse().unwrap();
        total += n * match c {
            'h' => 3600,
            'm' => 60,
            's' => 1,
            _ => panic!("duration {v}"),
        };
    }
    assert!(num.is_empty(), "duration {v}: give a unit");
    total
}

fn in_subnet(ip: Ipv4Addr, cidr: &str) -> bool {
    let (net, bits) = cidr.split_once('/').unwrap();
    let net: Ipv4Addr = net.parse().unwrap();
    let bits: u32 = bits.parse().unwrap();
    let mask = if bits == 0 {
        0
    } else {
        u32::MAX << (32 - bits)
    };
    u32::from(ip) & mask == u32::from(net) & mask
}

// ---------------------------------------------------------------------------------------------
// Configuration

#[test]
fn every_minilvb_variable_is_a_real_configuration_key() {
    let d = deploy();
    // One at a time, so that a failure names the variable.
    for (name, value) in d.minilvb_env() {
        if name.starts_with("MINILVB_") {
            if let Err(e) = try_load_config(&[(name.clone(), value.clone())]) {
                panic!("{name}={value:?} is not valid minilvb configuration: {e}");
            }
        }
    }
    // The image's own defaults, alone (`docker run minilvb`).
    let image_env = env_pairs(final_stage(&d.docker).1);
    let image = load_config(&image_env);
    assert!(
        image.database.url.expose().starts_with("sqlite:///data/"),
        "the image's database lives in /data"
    );
    // What compose runs.
    let cfg = d.config();
    assert_eq!(cfg.server.bind, "0.0.0.0:8080");
    let url = cfg.database.url.expose();
    let maria = d.env_of("mariadb");
    let maria = |k: &str| maria.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(
        url,
        format!(
            "mysql://{}:{}@mariadb:3306/{}",
            maria("MARIADB_USER"),
            maria("MARIADB_PASSWORD"),
            maria("MARIADB_DATABASE")
        ),
        "minilvb's database URL names the MariaDB service, its user, password and database"
    );
    assert!(!cfg.live.push_key.is_empty() && !cfg.live.bizid.is_empty());
    assert!(cfg.warnings().iter().all(|w| !w.contains("push_key")));

    // Names that are documented must be real keys too. A placeholder like
    // MINILVB_SECTION__KEY is not a name.
    for doc in ["README.md"] {
        let text = std::fs::read_to_string(root().join(doc)).expect("README.md");
        let mut rest = text.as_str();
        while let Some(p) = rest.find("MINILVB_") {
            let tail = &rest[p..];
            let end = tail
                .find(|c: char| !(c.is_ascii_uppercase() || c.is_ascii_digit() || c == '_'))
                .unwrap_or(tail.len());
            let name = &tail[..end];
            rest = &tail[end..];
            if name.ends_with('_') || name == "MINILVB_SECTION__KEY" {
                continue;
            }
            // A real key may still refuse this value; an unknown one is refused as unknown.
            if let Err(e) = try_load_config(&[(name.to_string(), "1".to_string())]) {
                assert!(
                    !e.contains("unknown field") && !e.contains("MINILVB_SECTION__KEY"),
                    "{doc} mentions {name}, which is not a configuration key: {e}"
                );
            }
        }
    }
}

#[test]
fn no_key_is_set_twice_under_two_names() {
    // MINILVB_BIND and MINILVB_SERVER__BIND (or MINILVB_DATABASE_URL and
    // MINILVB_DATABASE__URL) set one key; with both in one environment the order of the
    // environment decides. The image sets one of each pair: compose must use the same one.
    let d = deploy();
    let mut names: Vec<String> = env_pairs(final_stage(&d.docker).1)
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    names.extend(d.env_of("minilvb").into_iter().map(|(k, _)| k));
    let mut by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for n in names.into_iter().filter(|n| n.starts_with("MINILVB_")) {
        let key = match n.as_str() {
            "MINILVB_BIND" => "MINILVB_SERVER__BIND".to_string(),
            "MINILVB_DATABASE_URL" => "MINILVB_DATABASE__URL".to_string(),
            other => other.to_string(),
        };
        by_key.entry(key).or_default().insert(n);
    }
    for (key, names) in by_key {
        assert_eq!(names.len(), 1, "{key} is set as {names:?}");
    }
}

#[test]
fn env_example_and_compose_agree_and_hold_no_secrets() {
    let d = deploy();
    let example = parse_env_file(&read("deploy/.env.example"));
    let used: BTreeSet<&str> = d.refs.iter().map(|r| r.name.as_str()).collect();
    for name in &used {
        assert!(
            example.contains_key(*name),
            "docker-compose.yml uses ${{{name}}}: declare it in deploy/.env.example"
        );
    }
    for name in example.keys() {
        assert!(
            used.contains(name.as_str()),
            "deploy/.env.example declares {name}, which docker-compose.yml does not use"
        );
    }
    // Secrets come from .env only: compose spells none of them out, and the example
    // leaves them empty so that compose refuses to start until they are set.
    let secret_vars = ["MARIADB_PASSWORD", "MARIADB_ROOT_PASSWORD", "LVB_PUSH_KEY"];
    for name in secret_vars {
        assert_eq!(
            example[name], "",
            "deploy/.env.example must not carry a {name}"
        );
        assert!(
            d.refs.iter().all(|r| r.name != name || r.required),
            "compose must require {name} (${{{name}:?...}}), not default it"
        );
    }
    let raw_env = |service: &str| -> Vec<(String, String)> {
        d.compose_raw
            .at(&["services", service, "environment"])
            .map()
            .iter()
            .map(|(k, v)| (k.clone(), v.str().to_string()))
            .collect()
    };
    for (service, name, value) in raw_env("minilvb")
        .into_iter()
        .map(|(k, v)| ("minilvb", k, v))
        .chain(
            raw_env("mariadb")
                .into_iter()
                .map(|(k, v)| ("mariadb", k, v)),
        )
    {
        let lower = name.to_ascii_lowercase();
        if ["password", "key", "secret", "database__url"]
            .iter()
            .any(|s| lower.contains(s))
        {
            assert!(
                value.contains("${"),
                "{service}: {name} must come from .env, not be written in docker-compose.yml"
            );
        }
    }
    // .env itself stays out of the image build context.
    assert!(!dockerignore_allows(&read(".dockerignore"), ".env"));
}

// ---------------------------------------------------------------------------------------------
// Ports, addresses, paths

#[test]
fn published_ports_match_the_listeners() {
    let d = deploy();
    let cfg = d.config();
    let (_, bind_port) = split_host_port(&cfg.server.bind);
    let image = final_stage(&d.docker).1;
    let exposed: Vec<&str> = one(image, "EXPOSE").split_whitespace().collect();
    assert_eq!(
        exposed,
        [bind_port.to_string()],
        "the image EXPOSEs MINILVB_BIND's port"
    );
    let minilvb_ports = d.published("minilvb");
    assert!(!minilvb_ports.is_empty());
    for (_, container) in &minilvb_ports {
        assert_eq!(
            *container, bind_port,
            "minilvb publishes the port it listens on"
        );
    }

    let rtmp_listen: Vec<u16> = nginx_all(d.rtmp_server(), "listen")
        .into_iter()
        .map(listen_port)
        .collect();
    let http_listen: Vec<u16> = nginx_all(d.http_server(), "listen")
        .into_iter()
        .map(listen_port)
        .collect();
    assert_eq!(rtmp_listen.len(), 1);
    assert_eq!(http_listen.len(), 1);
    let (rtmp, http) = (rtmp_listen[0], http_listen[0]);
    let mut published: Vec<u16> = d.published("nginx-rtmp").iter().map(|p| p.1).collect();
    published.sort_unstable();
    let mut listening = vec![rtmp, http];
    listening.sort_unstable();
    assert_eq!(
        published, listening,
        "nginx publishes exactly the ports it listens on"
    );
    let mut exposed: Vec<u16> = one(final_stage(&d.nginx_docker).1, "EXPOSE")
        .split_whitespace()
        .map(|p| p.parse().unwrap())
        .collect();
    exposed.sort_unstable();
    assert_eq!(exposed, listening, "nginx's image EXPOSEs its listen ports");

    // What minilvb hands out points at nginx's published ports on the public host.
    let public = d.vars["PUBLIC_HOST"].as_str();
    let rtmp_host = d.host_port_for("nginx-rtmp", rtmp);
    let http_host = d.host_port_for("nginx-rtmp", http);
    for (what, v) in [
        ("push_host", &cfg.live.push_host),
        ("play_host", &cfg.live.play_host),
    ] {
        assert_eq!(split_host_port(v), (public, rtmp_host), "live.{what}");
    }
    assert_eq!(
        split_url(&cfg.live.http_play_base),
        (public, http_host, ""),
        "live.http_play_base"
    );
    let (h, p, _) = split_url(&cfg.media.recordings_base_url);
    assert_eq!((h, p), (public, http_host), "media.recordings_base_url");
}

#[test]
fn nginx_serves_what_minilvb_hands_out() {
    let d = deploy();
    let cfg = d.config();
    let app = d.rtmp_app();
    assert_eq!(
        app.args,
        std::slice::from_ref(&cfg.live.app_name),
        "the RTMP application is live.app_name: push URLs are rtmp://host/{{app}}/{{stream}}"
    );
    let app = inner(app);
    assert_eq!(arg(app, "live"), "on");

    // Recordings: the recorder's directory is served at recordings_base_url's path.
    let record_path = arg(app, "record_path");
    let (_, _, rec_path) = split_url(&cfg.media.recordings_base_url);
    assert_eq!(
        d.location_serving(record_path).trim_end_matches('/'),
        rec_path,
        "media.recordings_base_url's path serves record_path"
    );
    // HLS: {http_play_base}/{app}/{stream}.m3u8 is served from hls_path.
    assert_eq!(arg(app, "hls"), "on");
    assert_eq!(
        d.location_serving(arg(app, "hls_path")),
        format!("/{}/", cfg.live.app_name),
        "HLS play URLs ({{http_play_base}}/{{app}}/{{stream}}.m3u8) are served from hls_path"
    );

    // The recordings are a named volume of the nginx service, mounted at record_path.
    let nginx = d.service("nginx-rtmp");
    let mounts: Vec<(String, String)> = nginx
        .at(&["volumes"])
        .seq()
        .iter()
        .map(|v| {
            let (src, dst) = v.str().split_once(':').unwrap();
            (src.to_string(), dst.split(':').next().unwrap().to_string())
        })
        .collect();
    let rec = mounts
        .iter()
        .find(|(_, dst)| dst == record_path)
        .unwrap_or_else(|| panic!("no volume at record_path {record_path}"));
    assert!(
        d.compose.at(&["volumes"]).get(&rec.0).is_some(),
        "{} is a named volume",
        rec.0
    );

    // nginx's container is read-only: everything else it writes is on its tmpfs.
    assert_eq!(nginx.at(&["read_only"]).str(), "true");
    let tmpfs: Vec<&str> = nginx.at(&["tmpfs"]).seq().iter().map(Yaml::str).collect();
    let http = inner(nginx_one(&d.nginx, "http"));
    let mut written: Vec<&str> = vec![arg(&d.nginx, "pid"), arg(app, "hls_path")];
    for t in [
        "client_body_temp_path",
        "proxy_temp_path",
        "fastcgi_temp_path",
        "uwsgi_temp_path",
        "scgi_temp_path",
    ] {
        written.push(arg(http, t));
    }
    for path in written {
        assert!(
            tmpfs.iter().any(|t| path.starts_with(&format!("{t}/"))),
            "nginx writes {path}, which is not on a tmpfs of the read-only container"
        );
    }
    // The error log needs no file either: stderr.
    assert_eq!(nginx_one(&d.nginx, "error_log").args[0], "stderr");
    // No `user` directive: nginx runs as the image's non-root user.
    assert!(nginx_all(&d.nginx, "user").is_empty());
    let user = one(final_stage(&d.nginx_docker).1, "USER");
    assert!(!user.starts_with('0') && user.split(':').all(|p| p.parse::<u32>().is_ok()));

    // on_update keeps long broadcasts from going stale: it must come often enough.
    let update = nginx_seconds(arg(app, "notify_update_timeout"));
    assert!(
        cfg.live.stale_after_secs == 0 || update * 2 <= cfg.live.stale_after_secs,
        "notify_update_timeout {update}s against live.stale_after_secs {}",
        cfg.live.stale_after_secs
    );
}

#[test]
fn callbacks_point_at_minilvb_and_only_nginx_may_call_them() {
    let d = deploy();
    let cfg = d.config();
    let (_, bind_port) = split_host_port(&cfg.server.bind);
    let app = inner(d.rtmp_app());
    for cb in CALLBACKS {
        let (host, port, path) = split_url(arg(app, cb));
        assert_eq!(host, "minilvb", "{cb} calls the minilvb service by name");
        assert!(d.compose.at(&["services"]).get(host).is_some());
        assert_eq!(port, bind_port, "{cb} calls the port minilvb listens on");
        assert_eq!(path, "/callback/nginx-rtmp", "{cb}");
    }

    // Fixed addresses: minilvb trusts exactly nginx's, and nginx (which resolves the
    // callback host once, at start) always finds minilvb at the same one.
    let nginx_ip = d.ipv4("nginx-rtmp");
    let minilvb_ip = d.ipv4("minilvb");
    assert_eq!(cfg.media.trusted_addrs, [nginx_ip.to_string()]);
    let net_name = &d.service("nginx-rtmp").at(&["networks"]).map()[0].0;
    let ipam = d
        .compose
        .at(&["networks", net_name, "ipam", "config"])
        .seq();
    assert_eq!(ipam.len(), 1);
    let subnet = ipam[0].at(&["subnet"]).str();
    let range = ipam[0].at(&["ip_range"]).str();
    assert!(in_subnet(
        range.split('/').next().unwrap().parse().unwrap(),
        subnet
    ));
    for ip in [nginx_ip, minilvb_ip] {
        assert!(in_subnet(ip, subnet), "{ip} in {subnet}");
        assert!(
            !in_subnet(ip, range),
            "{ip} must be outside ip_range {range}, or another container may take it first"
        );
    }
    assert_ne!(nginx_ip, minilvb_ip);

    // nginx's control module answers minilvb, at nginx's fixed address, and no one else.
    let (host, port, path) = split_url(&cfg.media.nginx_control_url);
    assert_eq!(host, nginx_ip.to_string());
    let http_port = listen_port(nginx_one(d.http_server(), "listen"));
    assert_eq!(port, http_port);
    let control: Vec<&Directive> = nginx_all(d.http_server(), "location")
        .into_iter()
        .filter(|l| l.args.last().map(String::as_str) == Some(path))
        .collect();
    assert_eq!(control.len(), 1, "one location serves {path}");
    let rules = inner(control[0]);
    assert_eq!(arg(rules, "rtmp_control"), "all");
    assert_eq!(arg(rules, "allow"), minilvb_ip.to_string());
    assert_eq!(arg(rules, "deny"), "all");
    for s in d.compose.at(&["services"]).map() {
        let nets = s.1.at(&["networks"]);
        let names: Vec<&str> = match nets {
            Yaml::Seq(items) => items.iter().map(Yaml::str).collect(),
            Yaml::Map(entries) => entries.iter().map(|(k, _)| k.as_str()).collect(),
            other => panic!("{other:?}"),
        };
        assert_eq!(
            names,
            [net_name.as_str()],
            "{} is on the backend network",
            s.0
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Start-up order, stopping, the images

#[test]
fn services_start_in_order_and_stop_gracefully() {
    let d = deploy();
    let cfg = d.config();
    let depends = |s: &str, on: &str| {
        d.service(s)
            .at(&["depends_on", on, "condition"])
            .str()
            .to_string()
    };
    assert_eq!(depends("minilvb", "mariadb"), "service_healthy");
    assert_eq!(depends("nginx-rtmp", "minilvb"), "service_healthy");
    let test = d.service("mariadb").at(&["healthcheck", "test"]).seq();
    assert_eq!(test[0].str(), "CMD");
    assert_eq!(d.service("mariadb").at(&["image"]).str(), "mariadb:10.11");
    let command: Vec<&str> = d
        .service("mariadb")
        .at(&["command"])
        .seq()
        .iter()
        .map(Yaml::str)
        .collect();
    assert!(command.contains(&"--character-set-server=utf8mb4"));
    assert!(d.service("mariadb").at(&["volumes"]).seq()[0]
        .str()
        .ends_with(":/var/lib/mysql"));
    // minilvb's service_healthy comes from the image's HEALTHCHECK.
    assert!(d.service("minilvb").get("healthcheck").is_none());
    healthcheck(final_stage(&d.docker).1);
    healthcheck(final_stage(&d.nginx_docker).1);

    // SIGTERM drains for up to shutdown_timeout_secs, then flushes: the app gives itself
    // shutdown_timeout_secs + 5 s in all (src/app.rs). Docker must wait longer than that.
    assert_eq!(one(final_stage(&d.docker).1, "STOPSIGNAL"), "SIGTERM");
    let grace = duration_secs(d.service("minilvb").at(&["stop_grace_period"]).str());
    assert!(
        grace > cfg.server.shutdown_timeout_secs.max(1) + 5,
        "stop_grace_period {grace}s"
    );
}

#[test]
fn the_image_is_built_and_run_as_intended() {
    let d = deploy();
    let froms = all(&d.docker, "FROM");
    assert_eq!(froms.len(), 2, "two stages: build and run");
    assert!(froms[0].starts_with("rust:") && froms[0].ends_with(" AS build"));
    let (from, image) = final_stage(&d.docker);
    assert_eq!(from, "debian:bookworm-slim");
    let cargo_builds: Vec<&str> = all(&d.docker, "RUN")
        .into_iter()
        .filter(|r| r.contains("cargo build"))
        .collect();
    assert_eq!(
        cargo_builds.len(),
        2,
        "a dependency build, then the real one"
    );
    for b in &cargo_builds {
        assert!(b.contains("--release") && b.contains("--locked"), "{b}");
    }

    // Every target Cargo.toml declares needs a file in the dependency build, or cargo
    // refuses the manifest before building anything: a stub, or a directory copied first.
    let manifest: toml::Table = read("Cargo.toml").parse().unwrap();
    let mut needed = vec!["src/main.rs".to_string(), "src/lib.rs".to_string()];
    for (kind, dir) in [
        ("bin", "src/bin"),
        ("bench", "benches"),
        ("test", "tests"),
        ("example", "examples"),
    ] {
        for t in manifest
            .get(kind)
            .and_then(|v| v.as_array())
            .into_iter()
            .flatten()
        {
            let path = match t.get("path").and_then(|p| p.as_str()) {
                Some(p) => p.to_string(),
                None => format!("{dir}/{}.rs", t["name"].as_str().unwrap()),
            };
            needed.push(path);
        }
    }
    let build_stage: Vec<Instr> = d
        .docker
        .iter()
        .skip_while(|i| i.cmd != "FROM")
        .skip(1)
        .take_while(|i| i.cmd != "FROM")
        .cloned()
        .collect();
    let first_build = build_stage
        .iter()
        .position(|i| i.cmd == "RUN" && i.args.contains("cargo build"))
        .unwrap();
    let copied_first = context_sources(&build_stage[..first_build]);
    let stub_build = cargo_builds[0];
    for path in needed {
        let stubbed = stub_build.contains(&format!("> {path}"))
            || stub_build.contains(&format!("touch {path}"));
        let copied = copied_first
            .iter()
            .any(|c| path == *c || path.starts_with(&format!("{}/", c.trim_end_matches('/'))));
        assert!(
            stubbed || (copied && root().join(&path).exists()),
            "Cargo.toml declares {path}: the Dockerfile's dependency build neither stubs nor \
             copies it, and cargo would refuse the manifest"
        );
    }
    // No build script to copy; the package's own files that the compiler reads (include_str!,
    // include_bytes!) are all in directories the real build copies.
    assert!(
        manifest["package"].get("build").is_none() && !root().join("build.rs").exists(),
        "a build script: copy it in the Dockerfile, then adapt this test"
    );
    let copied_all = context_sources(&build_stage);
    let mut sources = vec![root().join("src")];
    while let Some(p) = sources.pop() {
        if p.is_dir() {
            sources.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if p.extension().is_none_or(|e| e != "rs") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for mac in ["include_str!(\"", "include_bytes!(\""] {
            for part in text.split(mac).skip(1) {
                let rel = part.split('"').next().unwrap();
                let file = p
                    .parent()
                    .unwrap()
                    .join(rel)
                    .canonicalize()
                    .unwrap_or_else(|e| panic!("{}: {mac}{rel}: {e}", p.display()));
                let inside = copied_all.iter().any(|c| {
                    file.starts_with(root().canonicalize().unwrap().join(c.trim_end_matches('/')))
                });
                assert!(
                    inside,
                    "{} includes {}, which the Dockerfile does not copy",
                    p.display(),
                    file.display()
                );
            }
        }
    }
    // The real build must not keep the stub binary: cargo would, seeing sources older
    // than the stub build (COPY keeps modification times).
    assert!(cargo_builds[1].contains("touch src/main.rs src/lib.rs"));

    // The run stage: the binary and the migrations, a fixed non-root user, /data.
    let copies = all(image, "COPY");
    assert_eq!(
        copies.len(),
        2,
        "only the binary and the migrations: {copies:?}"
    );
    assert!(copies
        .iter()
        .any(|c| c.ends_with("/minilvb /usr/local/bin/minilvb")));
    assert!(copies.iter().any(|c| c.contains("migrations")));
    assert!(
        all(image, "RUN").iter().all(|r| !r.contains("apt-get")),
        "nothing installed"
    );
    let user = one(image, "USER");
    let ids: Vec<u32> = user.split(':').map(|p| p.parse().unwrap()).collect();
    assert!(
        ids.iter().all(|&id| id >= 1000),
        "USER {user}: fixed, numeric, not root"
    );
    assert_eq!(json_array(one(image, "VOLUME")), ["/data"]);
    assert_eq!(
        json_array(one(image, "ENTRYPOINT")),
        ["/usr/local/bin/minilvb"]
    );
    assert_eq!(json_array(one(image, "CMD")), ["serve"]);
    let env: BTreeMap<String, String> = env_pairs(image).into_iter().collect();
    assert_eq!(env["MINILVB_BIND"], "0.0.0.0:8080");
    assert_eq!(
        env["MINILVB_DATABASE__URL"],
        "sqlite:///data/minilvb.db?mode=rwc"
    );
    let (opts, _) = healthcheck(image);
    assert!(opts.contains_key("interval") && opts.contains_key("timeout"));

    // The migrations directories the binary embeds are all in the context and the image.
    for backend in ["sqlite", "mysql"] {
        assert!(root().join("migrations").join(backend).is_dir());
    }
}

#[test]
fn build_contexts_hold_what_the_dockerfiles_copy() {
    let d = deploy();
    let ignore = read(".dockerignore");
    for src in context_sources(&d.docker) {
        assert!(
            dockerignore_allows(&ignore, &src),
            ".dockerignore leaves out {src}"
        );
        assert!(root().join(&src).exists(), "{src} does not exist");
    }
    for secret_or_junk in [".env", "target", ".git", "minilvb.toml", "minilvb.db"] {
        assert!(
            !dockerignore_allows(&ignore, secret_or_junk),
            "{secret_or_junk} is sent"
        );
    }
    let context = d
        .service("nginx-rtmp")
        .at(&["build", "context"])
        .str()
        .to_string();
    assert_eq!(
        d.service("nginx-rtmp").at(&["build", "dockerfile"]).str(),
        "nginx-rtmp.Dockerfile"
    );
    let ignore = read(&format!("{context}/.dockerignore"));
    for src in context_sources(&d.nginx_docker) {
        assert!(
            dockerignore_allows(&ignore, &src),
            "{context}/.dockerignore leaves out {src}"
        );
        assert!(root().join(&context).join(&src).exists(), "{context}/{src}");
    }
    assert!(!dockerignore_allows(&ignore, ".env"));
    assert_eq!(d.service("minilvb").at(&["build"]).str(), ".");
}

// ---------------------------------------------------------------------------------------------
// Against the running server

/// A form body shaped like the ones nginx-rtmp sends (recorded from nginx 1.22 with
/// libnginx-mod-rtmp 1.2.2), for `call`.
fn nginx_form(call: &str, name: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let f: Vec<(String, String)> = [
        ("app", "live"),
        ("flashver", "FMLE/3.0 (compatible; Lavf59.27"),
        ("swfurl", ""),
        ("tcurl", "rtmp://127.0.0.1:1935/live"),
        ("pageurl", ""),
        ("addr", "127.0.0.1"),
        ("clientid", "1"),
        ("call", call),
        ("name", name),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    f
}

async fn post_form(app: &TestApp, path: &str, form: &[(String, String)]) -> u16 {
    app.client
        .post(format!("{}{path}", app.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(form).unwrap())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// The `call` value nginx-rtmp sends for each hook of a publisher.
fn call_of(hook: &str) -> &'static str {
    match hook {
        "on_publish" => "publish",
        "on_publish_done" => "publish_done",
        "on_update" => "update_publish",
        "on_record_done" => "record_done",
        other => panic!("{other}"),
    }
}

#[actix_rt::test]
async fn nginx_callbacks_reach_real_routes() {
    let d = deploy();
    let app_conf = inner(d.rtmp_app());
    let record_path = arg(app_conf, "record_path").to_string();
    let hooks: BTreeMap<&str, String> = CALLBACKS
        .iter()
        .map(|cb| (*cb, split_url(arg(app_conf, cb)).2.to_string()))
        .collect();

    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let app = spawn_app(test_config(&db)).await;

    // Every hook's path is served (not 404, not 405), whatever the body.
    for (hook, path) in &hooks {
        let status = post_form(&app, path, &nginx_form(call_of(hook), "0_nobody", &[])).await;
        assert!(
            status != 404 && status != 405,
            "{hook} → POST {path} answered {status}"
        );
    }

    // And they do their work: a broadcast goes live, stays, ends and is recorded.
    let push = app.broadcast("deployvj").await;
    let stream = format!("{BIZID}_deployvj");
    let query: BTreeMap<String, String> =
        serde_urlencoded::from_str(push.split_once('?').unwrap().1).unwrap();
    let signed = [
        ("txSecret", query["txSecret"].as_str()),
        ("txTime", query["txTime"].as_str()),
    ];
    let unsigned = nginx_form("publish", &stream, &[]);
    assert_eq!(
        post_form(&app, &hooks["on_publish"], &unsigned).await,
        403,
        "an unsigned publish is refused"
    );
    let publish = nginx_form("publish", &stream, &signed);
    assert_eq!(post_form(&app, &hooks["on_publish"], &publish).await, 200);
    assert_eq!(app.info("deployvj").await["status"], "1");
    let update = nginx_form(
        "update_publish",
        &stream,
        &[("time", "60"), ("timestamp", "60000")],
    );
    assert_eq!(post_form(&app, &hooks["on_update"], &update).await, 200);
    let done = nginx_form("publish_done", &stream, &signed);
    assert_eq!(post_form(&app, &hooks["on_publish_done"], &done).await, 200);
    assert_eq!(app.info("deployvj").await["status"], "0");
    let file = format!("{stream}-1796000000.flv");
    let recorded = nginx_form(
        "record_done",
        &stream,
        &[("recorder", ""), ("path", &format!("{record_path}/{file}"))],
    );
    assert_eq!(
        post_form(&app, &hooks["on_record_done"], &recorded).await,
        200
    );
    app.settle().await;
    let list = app.ok(json!({"Action":"FetchList","flag":2})).await;
    let base = app.state.config.media.recordings_base_url.clone();
    assert_eq!(list["pusherlist"][0]["playurl"], format!("{base}/{file}"));

    app.stop().await;
    db.drop_db().await;
}

#[actix_rt::test]
async fn the_image_health_check_passes_on_a_live_server() {
    let d = deploy();
    let (_, cmd) = healthcheck(final_stage(&d.docker).1);
    let path = healthcheck_path(&cmd);
    assert_eq!(path, "/healthz");

    // The image's own defaults boot (the SQLite URL in /data, here in a temporary directory).
    let dir = std::env::temp_dir().join(format!("minilvb_deploy_data_{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let env: Vec<(String, String)> = env_pairs(final_stage(&d.docker).1)
        .into_iter()
        .map(|(k, v)| {
            let v = v.replace("sqlite:///data/", &format!("sqlite://{}/", dir.display()));
            if k == "MINILVB_BIND" {
                (k, "127.0.0.1:0".to_string())
            } else {
                (k, v)
            }
        })
        .collect();
    let app = spawn_app(load_config(&env)).await;
    for (p, want) in [(path.as_str(), 200), ("/readyz", 200)] {
        let status = app
            .client
            .get(format!("{}{p}", app.base))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, want, "GET {p}");
    }

    // The HEALTHCHECK command itself, as docker runs it (exec form, the image's
    // environment), against this server; and against a port nobody listens on.
    if Path::new("/bin/bash").exists() || Path::new("/usr/bin/bash").exists() {
        let cmd = cmd.clone();
        let run = move |bind: String, quiet: bool| {
            let (prog, args) = cmd.split_first().unwrap();
            let mut c = std::process::Command::new(prog);
            c.args(args)
                .env_clear()
                .env("PATH", "/usr/local/bin:/usr/bin:/bin")
                .env("MINILVB_BIND", bind);
            if quiet {
                c.stderr(std::process::Stdio::null());
            }
            c.status().unwrap()
        };
        let ok = tokio::task::spawn_blocking({
            let port = app.port;
            let run = run.clone();
            move || run(format!("0.0.0.0:{port}"), false)
        })
        .await
        .unwrap();
        assert!(
            ok.success(),
            "the image's HEALTHCHECK fails on a healthy server"
        );
        let closed = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let down = tokio::task::spawn_blocking(move || run(format!("0.0.0.0:{closed}"), true))
            .await
            .unwrap();
        assert!(
            !down.success(),
            "the HEALTHCHECK passes with nothing listening"
        );
    } else {
        eprintln!("bash is not installed here: the HEALTHCHECK command itself was not run");
    }
    app.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// `nginx -t` on deploy/nginx-rtmp.conf, with its container paths moved into a temporary
/// directory and the service name `minilvb` (resolved at load) replaced by 127.0.0.1.
#[test]
fn nginx_accepts_the_configuration() {
    const NGINX: &str = "/usr/sbin/nginx";
    const MODULE: &str = "/usr/lib/nginx/modules/ngx_rtmp_module.so";
    let d = deploy();
    if !(Path::new(NGINX).exists() && Path::new(MODULE).exists()) {
        assert!(
            std::env::var_os("CI").is_none(),
            "nginx and its RTMP module must be installed in CI (.ci/run installs them)"
        );
        eprintln!("skipped: nginx with the RTMP module is not installed");
        return;
    }
    let conf = read("deploy/nginx-rtmp.conf");
    assert!(conf.contains(&format!("load_module {MODULE};")));
    let dir: PathBuf =
        std::env::temp_dir().join(format!("minilvb_deploy_nginx_{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::create_dir_all(dir.join("rec")).unwrap();
    let record_path = arg(inner(d.rtmp_app()), "record_path").to_string();
    // /tmp/ first: the replacement for record_path lies under /tmp itself.
    let local = conf
        .replace("/tmp/", &format!("{}/tmp/", dir.display()))
        .replace(&record_path, &format!("{}/rec", dir.display()))
        .replace("http://minilvb:", "http://127.0.0.1:");
    let path = dir.join("nginx.conf");
    std::fs::write(&path, local).unwrap();
    let out = std::process::Command::new(NGINX)
        .arg("-t")
        .arg("-q")
        .arg("-c")
        .arg(&path)
        .arg("-e")
        .arg("stderr")
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        out.status.success(),
        "nginx -t refuses deploy/nginx-rtmp.conf:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// nginx-rtmp's on_update sends `call=update_publish` for a publisher (and `update_play`
/// for a player), not `call=update`: it must count as a sign of life, or a broadcast
/// longer than live.stale_after_secs would go offline although nginx still carries it.
#[actix_rt::test]
async fn nginx_on_update_keeps_a_broadcast_online() {
    let d = deploy();
    let path = split_url(arg(inner(d.rtmp_app()), "on_update"))
        .2
        .to_string();
    let db = TestDb::new(Backend::Sqlite).await.unwrap();
    let mut cfg = test_config(&db);
    cfg.live.stale_after_secs = 2;
    let app = spawn_app(cfg).await;
    let push = app.broadcast("longvj").await;
    let stream = format!("{BIZID}_longvj");
    let q: BTreeMap<String, String> =
        serde_urlencoded::from_str(push.split_once('?').unwrap().1).unwrap();
    let publish = nginx_form(
        "publish",
        &stream,
        &[("txSecret", &q["txSecret"]), ("txTime", &q["txTime"])],
    );
    assert_eq!(post_form(&app, &path, &publish).await, 200);
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        let update = nginx_form("update_publish", &stream, &[]);
        assert_eq!(post_form(&app, &path, &update).await, 200);
    }
    assert_eq!(
        app.info("longvj").await["status"],
        "1",
        "4 s of on_update, stale_after_secs 2: the room must still be online"
    );
    app.stop().await;
    db.drop_db().await;
}

/// `deploy/nginx-rtmp.local.conf` is the media server the embedded default (no bizid)
/// hands out: its ports, callbacks, recordings and HLS directories are minilvb's defaults.
/// (tests/e2e_nginx_rtmp.rs runs the file itself.)
#[test]
fn the_local_nginx_config_is_what_the_defaults_point_at() {
    let nginx = parse_nginx(&read("deploy/nginx-rtmp.local.conf"));
    let cfg = load_config(&[]);
    assert!(cfg.live.bizid.is_empty());
    let rtmp = inner(nginx_one(inner(nginx_one(&nginx, "rtmp")), "server"));
    let app = nginx_one(rtmp, "application");
    assert_eq!(app.args.len(), 1);
    assert_eq!(app.args[0], cfg.live.app_name);
    let app = inner(app);
    let listen = &nginx_one(rtmp, "listen").args[0];
    assert_eq!(listen, &cfg.live.push_host());
    assert_eq!(listen, &cfg.live.play_host());
    for cb in CALLBACKS {
        assert_eq!(
            arg(app, cb),
            format!("http://{}/callback/nginx-rtmp", cfg.server.bind),
            "{cb}"
        );
    }
    let http = inner(nginx_one(inner(nginx_one(&nginx, "http")), "server"));
    let base = cfg.live.http_play_base();
    assert_eq!(
        format!("http://{}", nginx_one(http, "listen").args[0]),
        base
    );
    let alias_of = |path: &str| {
        let loc = nginx_all(http, "location")
            .into_iter()
            .find(|l| l.args.last().map(String::as_str) == Some(path))
            .unwrap_or_else(|| panic!("a location {path}"));
        arg(inner(loc), "alias").to_string()
    };
    assert_eq!(
        cfg.media.recordings_base_url,
        format!("{base}/recordings"),
        "recordings play from the local server"
    );
    assert_eq!(
        alias_of("/recordings/"),
        format!("{}/", arg(app, "record_path"))
    );
    assert_eq!(
        alias_of(&format!("/{}/", cfg.live.app_name)),
        format!("{}/", arg(app, "hls_path"))
    );
    // A self-hosted live room plays over RTMP.
    assert!(!cfg.live.plays_flv());
}
