//! Thin I/O glue: reads whole payloads (bounded) and writes framed packets
//! on a byte stream.

use crate::packet::{self, FrameError, Payload};
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Why reading a payload failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The peer closed the connection.
    #[error("connection closed")]
    Closed,
    /// A socket error.
    #[error(transparent)]
    Io(#[from] std::io::Error),
    /// Bad framing.
    #[error(transparent)]
    Frame(#[from] FrameError),
}

async fn read_exact<S: AsyncRead + Unpin>(stream: &mut S, buf: &mut [u8]) -> Result<(), ReadError> {
    if buf.is_empty() {
        return Ok(());
    }
    match stream.read_exact(buf).await {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => Err(ReadError::Closed),
        Err(e) => Err(ReadError::Io(e)),
    }
}

/// A stream with a read buffer.
pub struct PacketConn<S> {
    /// The stream.
    pub stream: S,
    /// Bytes read and not consumed yet.
    pub buf: BytesMut,
}

impl<S: AsyncRead + AsyncWrite + Unpin> PacketConn<S> {
    /// Wraps `stream`.
    pub fn new(stream: S) -> Self {
        Self {
            stream,
            buf: BytesMut::with_capacity(16 * 1024),
        }
    }

    /// Reads more bytes; `Closed` at end of stream.
    pub async fn fill(&mut self) -> Result<usize, ReadError> {
        if self.buf.capacity() - self.buf.len() < 4096 {
            self.buf.reserve(16 * 1024);
        }
        match self.stream.read_buf(&mut self.buf).await? {
            0 => Err(ReadError::Closed),
            n => Ok(n),
        }
    }

    /// Reads one whole payload of at most `limit` bytes.
    pub async fn read_payload(&mut self, limit: usize) -> Result<Payload, ReadError> {
        loop {
            if let Some(p) = packet::take_payload(&mut self.buf, limit)? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Reads exactly one packet (at most `limit` bytes), never a byte more:
    /// for the client's first packet, which may be an SSL request followed
    /// at once by the TLS handshake that must reach the TLS acceptor.
    pub async fn read_packet_exact(&mut self, limit: usize) -> Result<Payload, ReadError> {
        if let Some(p) = packet::take_payload(&mut self.buf, limit)? {
            return Ok(p);
        }
        let mut head = [0u8; 4];
        let have = self.buf.len().min(4);
        head[..have].copy_from_slice(&self.buf[..have]);
        let _ = self.buf.split_to(have);
        read_exact(&mut self.stream, &mut head[have..]).await?;
        let h = packet::Header::peek(&head).ok_or(ReadError::Closed)?;
        if h.len > limit || h.continued() {
            return Err(ReadError::Frame(FrameError::TooLong { len: h.len, limit }));
        }
        let mut data = vec![0u8; h.len];
        let have = self.buf.len().min(h.len);
        data[..have].copy_from_slice(&self.buf[..have]);
        let _ = self.buf.split_to(have);
        read_exact(&mut self.stream, &mut data[have..]).await?;
        Ok(Payload {
            seq: h.seq,
            last_seq: h.seq,
            data,
            wire_len: 4 + h.len,
        })
    }

    /// Writes `payload` as packets from sequence id `seq`; returns the next id.
    pub async fn write_payload(&mut self, seq: u8, payload: &[u8]) -> std::io::Result<u8> {
        let mut out = BytesMut::with_capacity(payload.len() + 4);
        let next = packet::encode(&mut out, seq, payload);
        self.stream.write_all(&out).await?;
        self.stream.flush().await?;
        Ok(next)
    }

    /// Writes raw bytes and flushes.
    pub async fn write_raw(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        self.stream.write_all(bytes).await?;
        self.stream.flush().await
    }
}
