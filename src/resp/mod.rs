//! The Redis wire protocol, RESP2 and RESP3, in one place: the [`Frame`] type, its encoder,
//! the request parser used by servers and the reply parser used by clients.

mod frame;
mod parser;

pub use frame::{encode_command, format_double, format_g, Frame, ProtocolVersion};
pub use parser::{parse_i64, split_args, ParseError, ReplyParser, RequestParser, DEFAULT_MAX_BULK_LEN, INLINE_MAX_SIZE};
