//! The recording (VOD) lifecycle: a media server reports a file; it becomes a listed room.

use crate::model::{RoomKey, RoomRecord};
use crate::room::RoomError;
use crate::state::AppState;
use crate::store::NewRecording;

/// Stores a recording (or merges another format's URL into it) before answering, then
/// lets its room actor publish it to the list index.
pub async fn add(state: &AppState, rec: NewRecording) -> Result<RoomRecord, RoomError> {
    let record = state.store.put_recording(&rec).await?;
    let key = RoomKey::Recording {
        vj: rec.vj,
        fileid: rec.fileid,
    };
    match state.rooms.set_info(&key, record.info.clone()).await {
        // Stored but not loadable is impossible; a room that stopped meanwhile reads the row.
        Ok(()) | Err(RoomError::NoRoom(_)) => Ok(record),
        Err(e) => Err(e),
    }
}
