//! The master's command stream as a replica reads it, without I/O: splits what arrives into
//! the commands to apply (a MULTI/EXEC block as a whole), GETACK requests, and the exact bytes
//! that carried them, which the replica counts in its offset and forwards to its own
//! replicas. Kept pure so it can be fuzzed (fuzz/fuzz_targets/repl_stream.rs).

use bytes::{Bytes, BytesMut};

use crate::resp::{ParseError, RequestParser};

/// What the next request of the stream asks the replica to do.
#[derive(Debug, PartialEq, Eq)]
pub enum StreamStep {
    /// Commands to apply, in order: one command, or a whole MULTI/EXEC block.
    Apply(Vec<Vec<Bytes>>),
    /// `REPLCONF GETACK`: apply what precedes, then acknowledge the offset before it.
    GetAck,
}

#[derive(Default)]
pub struct MasterStream {
    parser: RequestParser,
    /// Mirrors the connection buffer plus what the parser consumed from it, so the exact
    /// bytes of each request can be accounted and forwarded.
    raw: BytesMut,
    /// Bytes the parser consumed for the request in progress.
    consumed: usize,
    /// Commands of a MULTI block whose EXEC has not arrived yet, and their bytes.
    multi: Option<Vec<Vec<Bytes>>>,
    multi_raw: BytesMut,
    /// Bytes processed and not yet taken by [`MasterStream::take_processed`].
    processed: BytesMut,
    /// A GETACK's own bytes: counted only after the acknowledgement that precedes them.
    after_ack: BytesMut,
}

impl MasterStream {
    /// `already_read`: bytes the handshake read past the RDB payload (the stream's start).
    pub fn new(already_read: &[u8]) -> Self {
        MasterStream { raw: BytesMut::from(already_read), ..Default::default() }
    }

    /// Records bytes just appended to the connection buffer.
    pub fn received(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
    }

    /// Parses the next request out of `buf` (the connection buffer). `Ok(None)`: need more.
    pub fn next(&mut self, buf: &mut BytesMut) -> Result<Option<StreamStep>, ParseError> {
        self.processed.extend_from_slice(&self.after_ack.split());
        loop {
            let before = buf.len();
            let parsed = self.parser.parse(buf)?;
            self.consumed += before - buf.len();
            let Some(argv) = parsed else { return Ok(None) };
            let cmd_raw = self.raw.split_to(self.consumed);
            self.consumed = 0;
            if argv.is_empty() {
                self.processed.extend_from_slice(&cmd_raw);
                continue;
            }
            let name = argv[0].to_ascii_lowercase();
            if name == b"replconf" && argv.get(1).is_some_and(|a| a.eq_ignore_ascii_case(b"getack")) {
                self.after_ack.extend_from_slice(&cmd_raw);
                return Ok(Some(StreamStep::GetAck));
            }
            let step = match (&mut self.multi, name.as_slice()) {
                (None, b"multi") => {
                    self.multi = Some(Vec::new());
                    None
                }
                (Some(_), b"exec") => self.multi.take().map(StreamStep::Apply),
                (Some(queued), _) => {
                    queued.push(argv);
                    None
                }
                (None, b"ping") => None,
                (None, _) => Some(StreamStep::Apply(vec![argv])),
            };
            if self.multi.is_some() {
                self.multi_raw.extend_from_slice(&cmd_raw);
            } else {
                self.processed.extend_from_slice(&self.multi_raw.split());
                self.processed.extend_from_slice(&cmd_raw);
            }
            if step.is_some() {
                return Ok(step);
            }
        }
    }

    /// The bytes of everything returned so far (and of skipped requests: PING, empty ones),
    /// to be counted in the offset with the commands they carried.
    pub fn take_processed(&mut self) -> BytesMut {
        self.processed.split()
    }

    /// Bytes received and not yet given out by `take_processed` (a partial request, an open
    /// MULTI block, a GETACK awaiting its acknowledgement).
    pub fn held_bytes(&self) -> usize {
        self.raw.len() + self.multi_raw.len() + self.processed.len() + self.after_ack.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cmd(args: &[&str]) -> Vec<Bytes> {
        args.iter().map(|a| Bytes::copy_from_slice(a.as_bytes())).collect()
    }

    #[test]
    fn blocks_getack_and_bytes_are_split_as_the_offset_needs() {
        let set = b"*3\r\n$3\r\nSET\r\n$1\r\na\r\n$1\r\n1\r\n".as_slice();
        let getack = b"*3\r\n$8\r\nREPLCONF\r\n$6\r\nGETACK\r\n$1\r\n*\r\n".as_slice();
        let multi = b"*1\r\n$5\r\nMULTI\r\n".as_slice();
        let exec = b"*1\r\n$4\r\nEXEC\r\n".as_slice();
        let ping = b"*1\r\n$4\r\nPING\r\n".as_slice();
        let all = [set, getack, ping, multi, set, exec, &set[..10]].concat();
        let mut stream = MasterStream::new(&[]);
        let mut buf = BytesMut::new();
        // One byte at a time, as the worst network would deliver it.
        let mut steps = Vec::new();
        let mut taken = Vec::new();
        for b in &all {
            buf.extend_from_slice(&[*b]);
            stream.received(&[*b]);
            while let Some(step) = stream.next(&mut buf).unwrap() {
                taken.push(stream.take_processed().len());
                steps.push(step);
            }
        }
        taken.push(stream.take_processed().len());
        assert_eq!(steps, vec![
            StreamStep::Apply(vec![cmd(&["SET", "a", "1"])]),
            StreamStep::GetAck,
            StreamStep::Apply(vec![cmd(&["SET", "a", "1"])]),
        ]);
        // The GETACK is counted after the acknowledgement; PING and the block go with the EXEC.
        assert_eq!(taken, vec![set.len(), 0, getack.len() + ping.len() + multi.len() + set.len() + exec.len(), 0]);
        assert_eq!(stream.held_bytes(), 10);
    }
}
