//! Recordings of a stream: what `smplcast sub --record FILE` writes and `--replay FILE` reads.
//!
//! A recording is an RFC 8742 CBOR sequence: a header map, then one map per message in the
//! order received, each with the message's raw payload (docs/WIRE.md, "Recordings"):
//!
//! ```text
//! header  = { "smplcast_recording": 1, "started_unix_ns": uint }
//! message = { "t_ns": uint, "topic": tstr, "qos": 0..2, "retain": bool, "payload": bstr }
//! ```
//!
//! `t_ns` counts from the start of the recording on a monotonic clock. Payloads are kept as
//! bytes, never decoded and re-encoded, so a replay republishes exactly what was received.
//! Each message is a complete CBOR item: a recording cut short (a killed recorder, a full
//! disk) reads back up to its last whole message.

use std::io::{BufReader, Read, Write};

use serde::{Deserialize, Serialize};

/// Format version in the header.
pub const RECORDING_VERSION: u32 = 1;

/// The first item of a recording.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Header {
    pub smplcast_recording: u32,
    /// Wall-clock start, nanoseconds since the Unix epoch.
    pub started_unix_ns: u64,
}

/// One message as received.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    /// Nanoseconds since the recording started.
    pub t_ns: u64,
    pub topic: String,
    pub qos: u8,
    pub retain: bool,
    #[serde(with = "serde_bytes")]
    pub payload: Vec<u8>,
}

/// Errors of reading or writing a recording.
#[derive(Debug, thiserror::Error)]
pub enum RecordingError {
    #[error("not a smplcast recording (it does not start with a recording header): {0}")]
    NotARecording(serde_cbor::Error),
    #[error("recording format version {found}; this smplcast reads version {RECORDING_VERSION}")]
    Version { found: u32 },
    #[error("message {index} of the recording is damaged: {source}")]
    Damaged { index: u64, source: serde_cbor::Error },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

/// Writes the header; [`write_message`] appends messages.
///
/// # Errors
/// The writer's.
pub fn write_header(out: &mut impl Write, header: &Header) -> Result<(), RecordingError> {
    serde_cbor::to_writer(&mut *out, header).map_err(cbor_write_error)?;
    Ok(())
}

/// Appends one message.
///
/// # Errors
/// The writer's.
pub fn write_message(out: &mut impl Write, message: &Recorded) -> Result<(), RecordingError> {
    serde_cbor::to_writer(&mut *out, message).map_err(cbor_write_error)?;
    Ok(())
}

fn cbor_write_error(e: serde_cbor::Error) -> RecordingError {
    RecordingError::Io(std::io::Error::other(e))
}

/// Reads a recording message by message.
pub struct Reader<R: Read> {
    stream: serde_cbor::StreamDeserializer<'static, serde_cbor::de::IoRead<BufReader<R>>, Recorded>,
    pub header: Header,
    read: u64,
    /// Set when the recording ends in an incomplete message (the recorder was cut off).
    pub truncated: bool,
}

impl<R: Read> Reader<R> {
    /// Reads and checks the header.
    ///
    /// # Errors
    /// [`RecordingError::NotARecording`] when the input does not start with a header,
    /// [`RecordingError::Version`] for another format version.
    pub fn new(input: R) -> Result<Self, RecordingError> {
        let mut de = serde_cbor::Deserializer::from_reader(BufReader::new(input));
        let header = Header::deserialize(&mut de).map_err(RecordingError::NotARecording)?;
        if header.smplcast_recording != RECORDING_VERSION {
            return Err(RecordingError::Version { found: header.smplcast_recording });
        }
        Ok(Reader { stream: de.into_iter(), header, read: 0, truncated: false })
    }
}

impl<R: Read> Iterator for Reader<R> {
    type Item = Result<Recorded, RecordingError>;

    /// The next message; `None` at the end, or after an incomplete last message (then
    /// [`Reader::truncated`] is set). A damaged message ends the iteration with its error.
    fn next(&mut self) -> Option<Self::Item> {
        match self.stream.next()? {
            Ok(message) => {
                self.read += 1;
                Some(Ok(message))
            }
            Err(e) if e.is_eof() => {
                self.truncated = true;
                None
            }
            Err(source) => {
                let index = self.read;
                // Nothing after a damaged item can be trusted to be aligned.
                self.read = u64::MAX;
                (index != u64::MAX).then_some(Err(RecordingError::Damaged { index, source }))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(k: u8) -> Recorded {
        Recorded {
            t_ns: u64::from(k) * 33_333_333,
            topic: format!("smplcast/cam{k}/pose"),
            qos: k % 2,
            retain: k == 0,
            payload: (0..=k).collect(),
        }
    }

    fn recording(n: u8) -> Vec<u8> {
        let mut bytes = Vec::new();
        write_header(&mut bytes, &Header { smplcast_recording: 1, started_unix_ns: 42 }).unwrap();
        for k in 0..n {
            write_message(&mut bytes, &message(k)).unwrap();
        }
        bytes
    }

    #[test]
    fn messages_read_back_as_written() {
        let bytes = recording(5);
        let mut reader = Reader::new(&bytes[..]).unwrap();
        assert_eq!(reader.header.started_unix_ns, 42);
        let read: Vec<Recorded> = reader.by_ref().map(Result::unwrap).collect();
        assert_eq!(read, (0..5).map(message).collect::<Vec<_>>());
        assert!(!reader.truncated);
    }

    #[test]
    fn a_recording_cut_short_reads_up_to_its_last_whole_message() {
        let bytes = recording(5);
        let mut reader = Reader::new(&bytes[..bytes.len() - 3]).unwrap();
        assert_eq!(reader.by_ref().map(Result::unwrap).count(), 4);
        assert!(reader.truncated);
    }

    #[test]
    fn other_files_are_named_as_such() {
        let pose = crate::wire::encode(&crate::wire::tests::msg(1));
        assert!(matches!(Reader::new(&pose[..]), Err(RecordingError::NotARecording(_))));
        assert!(matches!(Reader::new(&b""[..]), Err(RecordingError::NotARecording(_))));
        let mut v2 = Vec::new();
        write_header(&mut v2, &Header { smplcast_recording: 2, started_unix_ns: 0 }).unwrap();
        assert!(matches!(Reader::new(&v2[..]), Err(RecordingError::Version { found: 2 })));
    }

    #[test]
    fn a_damaged_message_is_reported_once_with_its_index() {
        let mut bytes = recording(3);
        // Replace the last message by a CBOR text string: well-formed, not a message.
        let last = {
            let mut one = Vec::new();
            write_message(&mut one, &message(2)).unwrap();
            one.len()
        };
        bytes.truncate(bytes.len() - last);
        bytes.extend([0x63, b'a', b'b', b'c']);
        let items: Vec<_> = Reader::new(&bytes[..]).unwrap().collect();
        assert_eq!(items.len(), 3);
        assert!(matches!(items[2], Err(RecordingError::Damaged { index: 2, .. })), "{items:?}");
    }
}
