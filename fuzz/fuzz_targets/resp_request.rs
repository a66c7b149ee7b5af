//! The request parser (what every client connection and the replica's master link run):
//! no panic on any input, and the same requests whether the bytes arrive at once or in
//! pieces (a connection reads arbitrary chunks).
#![no_main]
use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use redis_failover::resp::RequestParser;

type Parsed = Vec<Result<Vec<bytes::Bytes>, String>>;

/// Parses `input` fed in chunks of the given sizes; stops at the first error, as a
/// connection does (it replies with the error and closes).
fn parse_chunked(input: &[u8], chunk_sizes: &[u8], authenticated: bool) -> (Parsed, usize) {
    let mut parser = RequestParser::new().with_max_bulk_len(1 << 20);
    parser.set_authenticated(authenticated);
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    let mut fed = 0;
    let mut sizes = chunk_sizes.iter().cycle();
    while fed < input.len() {
        let step = if chunk_sizes.is_empty() { input.len() } else { (*sizes.next().unwrap() as usize).max(1) };
        let end = (fed + step).min(input.len());
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            match parser.parse(&mut buf) {
                Ok(Some(args)) => out.push(Ok(args)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    return (out, buf.len());
                }
            }
        }
    }
    (out, buf.len())
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, rest)) = data.split_first() else { return };
    let split = (split as usize).min(rest.len());
    let (chunk_sizes, input) = rest.split_at(split.min(16));
    for authenticated in [true, false] {
        let (whole, _) = parse_chunked(input, &[], authenticated);
        let (pieces, _) = parse_chunked(input, chunk_sizes, authenticated);
        // An error may be found at a different point only for inline requests that are too
        // long (the check needs the whole line, or more than the limit, buffered); every
        // request parsed before it is the same.
        let common = whole.len().min(pieces.len());
        assert_eq!(whole[..common], pieces[..common], "chunking changed the parsed requests");
        let whole_ok = whole.iter().filter(|r| r.is_ok()).count();
        let pieces_ok = pieces.iter().filter(|r| r.is_ok()).count();
        if whole.last().is_some_and(|r| r.is_ok()) && pieces.last().is_some_and(|r| r.is_ok()) {
            assert_eq!(whole_ok, pieces_ok, "chunking changed the number of requests");
        }
    }
});
