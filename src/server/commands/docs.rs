//! COMMAND DOCS details beyond what the command table states itself (summary, since and
//! group live in each `CommandSpec`): complexity, doc flags, deprecation, history and the
//! argument tree, kept as data in `docs_data.rs` (generated from Redis 7.0.15 by
//! `tests/data/gen_command_docs.py`) and attached to the table by command name. Likewise
//! COMMAND INFO's tips and key specs (`info_data.rs`, `tests/data/gen_command_info.py`).

use crate::resp::Frame;
use crate::server::command::CommandSpec;

/// One command's documentation. `fields` lists, in Redis's order, the fields its reply has
/// (after summary/since/group; `subcommands` always comes last).
#[derive(Debug)]
pub struct CommandDoc {
    pub name: &'static str,
    pub fields: &'static [&'static str],
    pub complexity: &'static str,
    pub doc_flags: &'static [&'static str],
    pub deprecated_since: &'static str,
    pub replaced_by: &'static str,
    pub history: &'static [(&'static str, &'static str)],
    pub arguments: &'static [DocArg],
}

/// One argument of a command's syntax (possibly a block or a oneof of arguments).
#[derive(Debug)]
pub struct DocArg {
    /// The fields its reply has, in Redis's order.
    pub fields: &'static [&'static str],
    pub name: &'static str,
    pub kind: &'static str,
    pub display: &'static str,
    pub key_spec_index: i64,
    pub token: &'static str,
    pub summary: &'static str,
    pub since: &'static str,
    pub flags: &'static [&'static str],
    pub deprecated_since: &'static str,
    pub value: &'static str,
    pub arguments: &'static [DocArg],
}

/// A reply tree kept as static data (COMMAND INFO key specs).
#[derive(Debug)]
pub enum Node {
    Bulk(&'static str),
    Simple(&'static str),
    Int(i64),
    Array(&'static [Node]),
    Set(&'static [Node]),
    Map(&'static [(&'static str, Node)]),
}

impl Node {
    pub fn frame(&self) -> Frame {
        match self {
            Node::Bulk(s) => Frame::bulk(*s),
            Node::Simple(s) => Frame::Simple(s.to_string()),
            Node::Int(i) => Frame::Integer(*i),
            Node::Array(items) => Frame::Array(items.iter().map(Node::frame).collect()),
            Node::Set(items) => Frame::Set(items.iter().map(Node::frame).collect()),
            Node::Map(pairs) => Frame::Map(pairs.iter().map(|(k, v)| (Frame::bulk(*k), v.frame())).collect()),
        }
    }
}

/// COMMAND INFO details of one command: its tips and its key specs.
#[derive(Debug)]
pub struct CommandInfo {
    pub name: &'static str,
    pub tips: &'static [&'static str],
    pub key_specs: Node,
}

/// The COMMAND INFO details of `name`, if Redis has the command.
pub fn find_info(name: &str) -> Option<&'static CommandInfo> {
    super::info_data::INFO.iter().find(|d| d.name == name)
}

/// The documentation of `name` (`get`, `config|get`), if Redis documents it.
pub fn find(name: &str) -> Option<&'static CommandDoc> {
    super::docs_data::DOCS.iter().find(|d| d.name == name)
}

fn status_set(items: &[&str]) -> Frame {
    Frame::Set(items.iter().map(|s| Frame::Simple(s.to_string())).collect())
}

fn arg_frame(arg: &DocArg) -> Frame {
    let mut m = Vec::new();
    for &field in arg.fields {
        let value = match field {
            "name" => Frame::bulk(arg.name),
            "type" => Frame::bulk(arg.kind),
            "display_text" => Frame::bulk(arg.display),
            "key_spec_index" => Frame::Integer(arg.key_spec_index),
            "token" => Frame::bulk(arg.token),
            "summary" => Frame::bulk(arg.summary),
            "since" => Frame::bulk(arg.since),
            "flags" => status_set(arg.flags),
            "deprecated_since" => Frame::bulk(arg.deprecated_since),
            "value" => Frame::bulk(arg.value),
            "arguments" => Frame::Array(arg.arguments.iter().map(arg_frame).collect()),
            _ => continue,
        };
        m.push((Frame::bulk(field), value));
    }
    Frame::Map(m)
}

/// COMMAND DOCS's reply for one command: the table's summary/since/group, the documented
/// details, then the subcommands.
pub fn docs_frame(spec: &CommandSpec) -> Frame {
    let mut m = vec![
        (Frame::bulk("summary"), Frame::bulk(spec.summary)),
        (Frame::bulk("since"), Frame::bulk(spec.since)),
        (Frame::bulk("group"), Frame::bulk(spec.group)),
    ];
    // Every command but CLIENT SETINFO (Redis 7.2) has generated details (a unit test checks).
    if let Some(doc) = find(&spec.name) {
        for &field in doc.fields {
            let value = match field {
                "complexity" => Frame::bulk(doc.complexity),
                "doc_flags" => status_set(doc.doc_flags),
                "deprecated_since" => Frame::bulk(doc.deprecated_since),
                "replaced_by" => Frame::bulk(doc.replaced_by),
                "history" => Frame::Set(doc.history.iter().map(|(v, t)| Frame::Array(vec![Frame::bulk(*v), Frame::bulk(*t)])).collect()),
                "arguments" => Frame::Array(doc.arguments.iter().map(arg_frame).collect()),
                _ => continue,
            };
            m.push((Frame::bulk(field), value));
        }
    }
    if !spec.subcommands.is_empty() {
        m.push((Frame::bulk("subcommands"), Frame::Map(spec.subcommands.iter().map(|s| (Frame::bulk(s.name.clone()), docs_frame(s))).collect())));
    }
    Frame::Map(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_documented_name_is_one_of_our_commands() {
        // The data is generated for the commands we implement: nothing stale may linger.
        let mut ours = Vec::new();
        for s in crate::server::commands::all() {
            ours.extend(s.subcommands.iter().map(|c| c.name.clone()));
            ours.push(s.name);
        }
        for doc in super::super::docs_data::DOCS {
            assert!(ours.iter().any(|n| n == doc.name), "{} is documented but not implemented", doc.name);
        }
        for info in super::super::info_data::INFO {
            assert!(ours.iter().any(|n| n == info.name), "{} has COMMAND INFO data but is not implemented", info.name);
        }
        // Every implemented Redis 7.0 command has its data (client|setinfo is from 7.2).
        for name in &ours {
            if name != "client|setinfo" {
                assert!(find(name).is_some() && find_info(name).is_some(), "{name} lacks generated COMMAND DOCS/INFO data");
            }
        }
    }

    #[test]
    fn table_agrees_with_the_documentation_it_is_served_with() {
        // Spot checks of the attached details.
        let lpos = find("lpos").expect("lpos documented");
        assert!(lpos.complexity.starts_with("O(N)"));
        assert_eq!(lpos.arguments.iter().map(|a| a.name).collect::<Vec<_>>(), ["key", "element", "rank", "num-matches", "len"]);
        let getset = find("getset").expect("getset documented");
        assert_eq!(getset.doc_flags, ["deprecated"]);
        assert_eq!(getset.deprecated_since, "6.2.0");
    }
}
