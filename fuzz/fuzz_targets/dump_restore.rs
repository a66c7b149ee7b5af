//! RESTORE's payload decoder: no panic on any payload (the input as sent, and the input with
//! a valid version and CRC trailer appended so the decoder behind the check is reached);
//! an accepted value survives DUMP then RESTORE.
#![no_main]
use libfuzzer_sys::fuzz_target;
use redis_failover::server::persistence::convert::{rdb_to_value, value_to_rdb};
use redis_failover::server::types::EncodingLimits;
use redis_failover::server::persistence::dump::{dump_payload, restore_payload};
use redis_failover::server::persistence::rdb::{RdbValue, RDB_VERSION};

/// Sets and hashes have no element order; compare them sorted.
fn normalized(mut v: RdbValue) -> RdbValue {
    match &mut v {
        RdbValue::Set(members) => members.sort(),
        RdbValue::Hash(pairs) => pairs.sort(),
        _ => {}
    }
    v
}

fn check(payload: &[u8]) {
    if let Ok(value) = restore_payload(payload) {
        let rebuilt = value_to_rdb(&rdb_to_value(value, &EncodingLimits::default()));
        for compression in [false, true] {
            let again = restore_payload(&dump_payload(&rebuilt, compression)).expect("our own DUMP restores");
            assert_eq!(normalized(value_to_rdb(&rdb_to_value(again, &EncodingLimits::default()))), normalized(rebuilt.clone()), "DUMP/RESTORE changed the value");
        }
    }
}

fuzz_target!(|data: &[u8]| {
    check(data);
    let mut signed = data.to_vec();
    signed.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &signed);
    signed.extend_from_slice(&crc.to_le_bytes());
    check(&signed);
});
