//! FUNCTION LOAD's time limit (Redis's `luaEngineLoadHook`): a library's top level may run
//! 500 ms, then the load fails with "FUNCTION LOAD timeout".
//!
//! Busy scripts (-BUSY to other clients past busy-reply-threshold, SCRIPT KILL / FUNCTION KILL
//! of a running script) are not offered: a script holds the server lock on the thread that
//! also serves every other connection (`io-threads 1`), so nothing could answer them.

use mlua::{HookTriggers, Lua, Table, VmState};

/// VM instructions between two looks at the clock (Redis's count hook uses the same).
const HOOK_EVERY: u32 = 100_000;

/// Bounds the next Lua run to `timeout_ms` (remove with `Lua::remove_global_hook`).
pub fn install_load_timeout(lua: &Lua, runtime: &Table, timeout_ms: i64) -> mlua::Result<()> {
    let runtime = runtime.clone();
    let started = crate::server::now_ms();
    lua.set_global_hook(HookTriggers::new().every_nth_instruction(HOOK_EVERY), move |lua, _| {
        if crate::server::now_ms() - started > timeout_ms {
            let err = super::engine::error_table(lua, b"FUNCTION LOAD timeout")?;
            return super::engine::raise(&runtime, err);
        }
        Ok(VmState::Continue)
    })
}
