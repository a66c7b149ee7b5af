//! The master's command stream as a replica reads it (`replication::stream::MasterStream`):
//! no panic; every byte received is either handed out for the offset or still held; and the
//! steps do not depend on how the bytes were split into reads.
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_failover::server::replication::stream::{MasterStream, StreamStep};

/// Feeds `input` in reads of the given sizes; returns the steps (up to the first protocol
/// error) and whether an error stopped it.
fn run(input: &[u8], read_sizes: &[u8]) -> (Vec<StreamStep>, bool) {
    let mut stream = MasterStream::new(&[]);
    let mut buf = BytesMut::new();
    let mut steps = Vec::new();
    let (mut fed, mut handed_out) = (0usize, 0usize);
    let mut sizes = read_sizes.iter().cycle();
    while fed < input.len() {
        let step = if read_sizes.is_empty() { input.len() } else { (*sizes.next().unwrap() as usize).max(1) };
        let chunk = &input[fed..(fed + step).min(input.len())];
        fed += chunk.len();
        buf.extend_from_slice(chunk);
        stream.received(chunk);
        loop {
            match stream.next(&mut buf) {
                Ok(Some(s)) => {
                    steps.push(s);
                    handed_out += stream.take_processed().len();
                }
                Ok(None) => break,
                Err(_) => return (steps, true),
            }
        }
        handed_out += stream.take_processed().len();
        assert_eq!(handed_out + stream.held_bytes(), fed, "stream bytes lost or counted twice");
    }
    (steps, false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&n, rest)) = data.split_first() else { return };
    let (read_sizes, input) = rest.split_at((n as usize % 8).min(rest.len()));
    let (whole, whole_err) = run(input, &[]);
    let (pieces, pieces_err) = run(input, read_sizes);
    let common = whole.len().min(pieces.len());
    assert_eq!(whole[..common], pieces[..common], "read boundaries changed the steps");
    if !whole_err && !pieces_err {
        assert_eq!(whole.len(), pieces.len(), "read boundaries changed the number of steps");
    }
});
