//! Walking raw frames in a read buffer: frames a relay must look at are
//! handed over whole, all others are streamed by length without waiting for
//! their end, and a looked-at frame may be replaced on the way out.

use crate::frame::peek_header;
use crate::relay::RelayError;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes read at a time by [`pump`].
const CHUNK: usize = 64 * 1024;

/// Replacements found by one walk: (start, end, frames) in buffer order.
pub type Splices = Vec<(usize, usize, BytesMut)>;

/// What a relay direction does with frames.
pub trait FrameHandler {
    /// Whether frames of this type must be handed over whole.
    fn wants(&self, tag: u8) -> bool;
    /// A complete wanted frame; a returned frame replaces it on the way out.
    fn on_frame(&mut self, tag: u8, frame: &[u8]) -> Result<Option<BytesMut>, RelayError>;
    /// A wanted frame's header was seen (perhaps more than once, while the
    /// rest of it arrives); an error ends the relay before it goes out.
    fn admit(&mut self, _tag: u8) -> Result<(), RelayError> {
        Ok(())
    }
    /// A wanted frame longer than [`MAX_WHOLE_FRAME`]: it is streamed
    /// through unseen instead of being buffered whole.
    fn on_streamed(&mut self, _tag: u8) {}
}

/// Longest frame handed over whole; a longer one (the protocol allows 1 GiB)
/// is streamed, so a client cannot make the relay buffer it.
pub const MAX_WHOLE_FRAME: usize = 16 * 1024 * 1024;

/// A [`FrameHandler`] from a fixed set of types and a closure.
pub struct Fns<F>(pub fn(u8) -> bool, pub F);

impl<F> FrameHandler for Fns<F>
where
    F: FnMut(u8, &[u8]) -> Result<Option<BytesMut>, RelayError>,
{
    fn wants(&self, tag: u8) -> bool {
        (self.0)(tag)
    }

    fn on_frame(&mut self, tag: u8, frame: &[u8]) -> Result<Option<BytesMut>, RelayError> {
        (self.1)(tag, frame)
    }
}

/// Frame-walking state that lasts across reads.
#[derive(Default)]
pub struct Walker {
    /// Bytes of a partially received, streamed frame still to pass.
    skip: usize,
}

impl Walker {
    /// Walks the complete frames at the start of `buf`, handing the wanted
    /// ones to `handler` (a returned frame replaces it in `splices`).
    /// Returns how many bytes may be written out now.
    pub fn walk(
        &mut self,
        buf: &[u8],
        handler: &mut impl FrameHandler,
        splices: &mut Splices,
    ) -> Result<usize, RelayError> {
        let mut pos = 0;
        while pos < buf.len() {
            if self.skip > 0 {
                let n = self.skip.min(buf.len() - pos);
                pos += n;
                self.skip -= n;
                continue;
            }
            let Some(h) = peek_header(&buf[pos..])? else {
                break;
            };
            let available = buf.len() - pos;
            let wanted = handler.wants(h.tag);
            if wanted {
                handler.admit(h.tag)?;
            }
            if wanted && h.frame_len > MAX_WHOLE_FRAME {
                handler.on_streamed(h.tag);
            }
            if wanted && h.frame_len <= MAX_WHOLE_FRAME {
                if available < h.frame_len {
                    break;
                }
                let end = pos + h.frame_len;
                if let Some(new) = handler.on_frame(h.tag, &buf[pos..end])? {
                    splices.push((pos, end, new));
                }
                pos = end;
            } else if available >= h.frame_len {
                pos += h.frame_len;
            } else {
                self.skip = h.frame_len - available;
                pos = buf.len();
            }
        }
        Ok(pos)
    }
}

/// Writes `buf[..upto]` with the splices applied, then flushes (a TLS
/// stream keeps accepted bytes in its record buffer until flushed).
pub async fn write_spliced<W: AsyncWrite + Unpin>(
    w: &mut W,
    buf: &[u8],
    upto: usize,
    splices: &mut Splices,
) -> std::io::Result<()> {
    let mut at = 0;
    for (start, end, frames) in splices.drain(..) {
        w.write_all(&buf[at..start]).await?;
        w.write_all(&frames).await?;
        at = end;
    }
    w.write_all(&buf[at..upto]).await?;
    w.flush().await
}

/// Relays one direction until `reader` ends: frames go through `handler`
/// (spliced where it replaces them), every chunk is flushed before the next
/// wait, and at the end `writer` is shut down cleanly (close_notify over TLS).
pub async fn pump<R, W, H>(
    mut reader: R,
    mut buf: BytesMut,
    mut writer: W,
    handler: &mut H,
) -> Result<(), RelayError>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
    H: FrameHandler,
{
    let mut walker = Walker::default();
    let mut splices = Splices::new();
    loop {
        let pos = walker.walk(&buf, handler, &mut splices)?;
        if pos > 0 {
            write_spliced(&mut writer, &buf, pos, &mut splices).await?;
            let _ = buf.split_to(pos);
        }
        buf.reserve(CHUNK);
        if reader.read_buf(&mut buf).await? == 0 {
            let _ = writer.shutdown().await;
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::{put_command_complete, put_data_row, put_query};

    #[test]
    fn wanted_frames_come_whole_and_others_stream_across_reads() {
        let mut buf = BytesMut::new();
        put_data_row(&mut buf, &[Some(&"x".repeat(100))]);
        put_command_complete(&mut buf, "SELECT 1");
        put_query(&mut buf, "SELECT 2");
        let whole = buf.clone();
        let mut w = Walker::default();
        let mut splices = Splices::new();
        let mut seen = Vec::new();
        // First read: half of the DataRow only; it streams.
        let not_rows: fn(u8) -> bool = |t| t != b'D';
        let mut h = Fns(not_rows, |t, _: &[u8]| {
            seen.push(t);
            Ok(None)
        });
        let pos = w.walk(&whole[..50], &mut h, &mut splices).expect("walk");
        assert_eq!(pos, 50);
        let rest = &whole[50..];
        let mut h = Fns(not_rows, |t, f: &[u8]| {
            seen.push(t);
            Ok((t == b'C').then(|| BytesMut::from(f)))
        });
        let pos = w.walk(rest, &mut h, &mut splices).expect("walk");
        assert_eq!(pos, rest.len());
        assert_eq!(seen, vec![b'C', b'Q']);
        assert_eq!(splices.len(), 1);
    }

    #[test]
    fn an_oversized_wanted_frame_streams_instead_of_being_buffered() {
        // Only the header of a 20 MiB Query has arrived: it streams at once.
        let mut head = vec![b'Q'];
        head.extend_from_slice(&(20 * 1024 * 1024i32).to_be_bytes());
        head.extend_from_slice(b"SELECT ");
        let mut w = Walker::default();
        let mut splices = Splices::new();
        struct Watch(Vec<u8>, usize);
        impl FrameHandler for Watch {
            fn wants(&self, _: u8) -> bool {
                true
            }
            fn on_frame(&mut self, t: u8, _: &[u8]) -> Result<Option<BytesMut>, RelayError> {
                self.0.push(t);
                Ok(None)
            }
            fn on_streamed(&mut self, _: u8) {
                self.1 += 1;
            }
        }
        let mut h = Watch(Vec::new(), 0);
        let pos = w.walk(&head, &mut h, &mut splices).expect("walk");
        assert_eq!(pos, head.len(), "nothing is held back");
        assert_eq!((h.0.len(), h.1), (0, 1));
    }
}
