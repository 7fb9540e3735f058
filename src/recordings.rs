//! The recording (VOD) lifecycle: a media server reports a file; it becomes a listed room.

use crate::app::AppState;
use crate::model::{RoomKey, RoomRecord};
use crate::protocol::ApiError;
use crate::room::SetInfo;
use crate::store::NewRecording;

/// Stores a recording (or merges another format's URL into it) before answering, then
/// lets its room actor publish it to the list index.
pub async fn add(state: &AppState, rec: NewRecording) -> Result<RoomRecord, ApiError> {
    let record = state.store.put_recording(&rec).await?;
    let key = RoomKey::Recording {
        vj: rec.vj,
        fileid: rec.fileid,
    };
    state
        .registry
        .ask(
            &key,
            SetInfo {
                info: record.info.clone(),
            },
        )
        .await?;
    Ok(record)
}
