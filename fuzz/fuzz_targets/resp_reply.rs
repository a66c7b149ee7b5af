//! The reply parser (sentinels, replicas and the operator's checks read servers with it):
//! no panic, and encoding is stable: a parsed frame, encoded, parses back to a frame with the
//! same encoding (RESP3 has one null where RESP2 has two, so frames may differ there).
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_failover::resp::{ProtocolVersion, ReplyParser};

fuzz_target!(|data: &[u8]| {
    let mut buf = BytesMut::from(data);
    for _ in 0..64 {
        match ReplyParser::parse(&mut buf) {
            Ok(Some(frame)) => {
                let encoded = frame.to_bytes(ProtocolVersion::Resp3);
                let mut again = BytesMut::from(&encoded[..]);
                let reparsed = ReplyParser::parse(&mut again).expect("our own encoding parses").expect("a whole frame");
                assert!(again.is_empty(), "re-encoding left bytes behind");
                assert_eq!(reparsed.to_bytes(ProtocolVersion::Resp3), encoded, "encoding is not stable for {frame:?}");
            }
            Ok(None) | Err(_) => break,
        }
    }
});
