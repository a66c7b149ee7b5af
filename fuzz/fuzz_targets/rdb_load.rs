//! The RDB loader (start-up, full sync payloads, RDB-preamble AOF): no panic on any file,
//! and every value it accepts can be built into the keyspace and saved back.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redis_failover::server::persistence::convert::{rdb_to_value, value_to_rdb};
use redis_failover::server::types::EncodingLimits;
use redis_failover::server::persistence::dump::dump_payload;
use redis_failover::server::persistence::rdb_load::{RdbItem, RdbReader};

fuzz_target!(|data: &[u8]| {
    // The checksum is checked too, but a fuzzer rarely gets it right: without the check
    // it reaches the value decoders.
    for verify in [false, true] {
        let Ok(reader) = RdbReader::new(data) else { return };
        let mut reader = reader.with_checksum_verification(verify);
        for _ in 0..10_000 {
            match reader.next_item() {
                Ok(Some(RdbItem::Entry(entry))) => {
                    let value = rdb_to_value(entry.value, &EncodingLimits::default());
                    let _ = dump_payload(&value_to_rdb(&value), true);
                }
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }
});
