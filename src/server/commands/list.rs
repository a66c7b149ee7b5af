//! The list command family (owned by the types family; placeholder until it merges).

use crate::server::command::CommandSpec;

pub fn commands() -> Vec<CommandSpec> {
    Vec::new()
}
