//! DUMP / RESTORE payloads: `<type byte><value>` as in RDB, then the 2-byte RDB
//! version (little endian) and a CRC64 of everything before it.

use std::sync::atomic::{AtomicBool, Ordering};

use thiserror::Error;

/// `DEBUG SET-SKIP-CHECKSUM-VALIDATION <0|1>` (Redis's server.skip_checksum_validation):
/// RESTORE then takes a payload whatever its CRC64 (the version is still checked).
static SKIP_CHECKSUM: AtomicBool = AtomicBool::new(false);

pub fn set_skip_checksum_validation(on: bool) {
    SKIP_CHECKSUM.store(on, Ordering::Relaxed);
}

use super::rdb::{encode_value, RdbError, RdbSaveOptions, RdbValue, RDB_VERSION};
use super::rdb_load::RdbReader;

#[derive(Debug, Error)]
pub enum DumpError {
    /// Redis's text for every malformed payload.
    #[error("DUMP payload version or checksum are wrong")]
    BadPayload,
    #[error("Bad data format")]
    BadFormat(#[source] RdbError),
}

pub fn dump_payload(value: &RdbValue, compression: bool) -> Vec<u8> {
    let opts = RdbSaveOptions { compression, ..Default::default() };
    let mut out = Vec::with_capacity(64);
    encode_value(&mut out, value, &opts);
    out.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(0, &out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// Verifies and decodes a payload produced by DUMP (ours or Redis's, RDB version <= ours).
pub fn restore_payload(payload: &[u8]) -> Result<RdbValue, DumpError> {
    if payload.len() < 10 {
        return Err(DumpError::BadPayload);
    }
    let n = payload.len();
    let version = u16::from_le_bytes([payload[n - 10], payload[n - 9]]);
    if version > RDB_VERSION {
        return Err(DumpError::BadPayload);
    }
    let crc = u64::from_le_bytes(payload[n - 8..].try_into().expect("8 bytes"));
    if !SKIP_CHECKSUM.load(Ordering::Relaxed) && crc64::crc64(0, &payload[..n - 8]) != crc {
        return Err(DumpError::BadPayload);
    }
    let body = &payload[..n - 10];
    // A trailer with nothing before it: Redis fails reading the type (fuzz finding).
    let Some(&ty) = body.first() else {
        return Err(DumpError::BadFormat(RdbError::Truncated { offset: 0, what: "value type" }));
    };
    // Reuse the RDB reader over a synthetic header so offsets and checks are shared.
    let mut image = Vec::with_capacity(body.len() + 9);
    image.extend_from_slice(b"REDIS0010");
    image.extend_from_slice(body);
    let mut reader = RdbReader::new(&image).map_err(DumpError::BadFormat)?;
    let value = reader.read_value_after_type(ty).map_err(DumpError::BadFormat)?;
    if reader.position() != image.len() {
        return Err(DumpError::BadFormat(RdbError::Corrupt {
            offset: reader.position() - 9,
            reason: "trailing bytes after the value".into(),
        }));
    }
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing found RESTORE panicking on a payload that is only a valid version + CRC trailer.
    #[test]
    fn a_payload_with_no_value_is_bad_data_not_a_panic() {
        let mut payload = RDB_VERSION.to_le_bytes().to_vec();
        let crc = crc64::crc64(0, &payload);
        payload.extend_from_slice(&crc.to_le_bytes());
        assert!(matches!(restore_payload(&payload), Err(DumpError::BadFormat(_))));
    }
    use bytes::Bytes;

    #[test]
    fn dump_restore_round_trip_and_checks() {
        let v = RdbValue::List(vec![Bytes::from_static(b"a"), Bytes::from_static(b"123")]);
        let p = dump_payload(&v, true);
        assert_eq!(restore_payload(&p).unwrap(), v);
        let mut bad = p.clone();
        bad[1] ^= 1;
        assert!(matches!(restore_payload(&bad), Err(DumpError::BadPayload)));
        assert!(matches!(restore_payload(b"short"), Err(DumpError::BadPayload)));
    }

    #[test]
    fn restores_a_payload_made_by_redis() {
        // redis-cli: SET k hello; DUMP k (Redis 7.0.15)
        let p = b"\x00\x05hello\n\x00cr\xdfve4 \n";
        assert_eq!(restore_payload(p).unwrap(), RdbValue::String(Bytes::from_static(b"hello")));
    }
}
