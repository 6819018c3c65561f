//! Metadata: 8 KiB blocks, each compressed (or not) when it fills, and the
//! lookup tables (fragments, ids) written as metadata blocks plus an index.

use anyhow::{Context, Result};

use super::records::{METADATA_SIZE, METADATA_UNCOMPRESSED};
use crate::compress::Compressor;

/// A finished reference into a metadata table: compressed block start
/// (relative to the table) and offset in the uncompressed block.
#[derive(Debug, Clone, Copy)]
pub(super) struct MetaRef {
    pub block: u32,
    pub offset: u16,
}

impl MetaRef {
    pub fn inode_ref(self) -> u64 {
        (u64::from(self.block) << 16) | u64::from(self.offset)
    }
}

/// A metadata table written in 8 KiB blocks, each compressed when full.
pub(super) struct MetaWriter<'c> {
    out: Vec<u8>,
    pending: Vec<u8>,
    /// Uncompressed bytes flushed so far (a multiple of `METADATA_SIZE`).
    flushed: u64,
    /// Compressed start of each flushed block, relative to the table.
    block_starts: Vec<u32>,
    /// `None`: blocks are stored uncompressed.
    comp: Option<&'c Compressor>,
}

impl<'c> MetaWriter<'c> {
    pub fn new(comp: Option<&'c Compressor>) -> Self {
        MetaWriter { out: Vec::new(), pending: Vec::new(), flushed: 0, block_starts: Vec::new(), comp }
    }

    /// Where the next byte goes.
    pub fn pos(&self) -> Result<MetaRef> {
        Ok(MetaRef {
            block: u32::try_from(self.out.len()).context("metadata table larger than 4 GiB")?,
            offset: self.pending.len() as u16,
        })
    }

    /// Uncompressed position of the next byte from the table start.
    pub fn upos(&self) -> u64 {
        self.flushed + self.pending.len() as u64
    }

    pub fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.pending.extend_from_slice(bytes);
        while self.pending.len() >= METADATA_SIZE {
            let rest = self.pending.split_off(METADATA_SIZE);
            let block = std::mem::replace(&mut self.pending, rest);
            self.flush_block(&block)?;
        }
        Ok(())
    }

    fn flush_block(&mut self, block: &[u8]) -> Result<()> {
        self.block_starts.push(u32::try_from(self.out.len()).context("metadata table larger than 4 GiB")?);
        let c = match self.comp {
            Some(comp) => comp.compress(block)?,
            None => block.to_vec(),
        };
        if c.len() < block.len() {
            self.out.extend_from_slice(&(c.len() as u16).to_le_bytes());
            self.out.extend_from_slice(&c);
        } else {
            self.out.extend_from_slice(&(block.len() as u16 | METADATA_UNCOMPRESSED).to_le_bytes());
            self.out.extend_from_slice(block);
        }
        self.flushed += block.len() as u64;
        Ok(())
    }

    /// The table's bytes and the compressed start of each of its blocks.
    pub fn finish(mut self) -> Result<(Vec<u8>, Vec<u32>)> {
        if !self.pending.is_empty() {
            let block = std::mem::take(&mut self.pending);
            self.flush_block(&block)?;
        }
        Ok((self.out, self.block_starts))
    }
}

/// A lookup table (fragment or id table): `entries` in metadata blocks, then
/// the index of those blocks' image offsets. Returns the index's offset,
/// which the superblock records. (With no entries the index is empty and
/// the offset is where it would be.)
pub(super) fn write_table(image: &mut Vec<u8>, entries: &[u8], comp: Option<&Compressor>) -> Result<u64> {
    let mut w = MetaWriter::new(comp);
    w.write(entries)?;
    let (bytes, starts) = w.finish()?;
    let base = image.len() as u64;
    image.extend_from_slice(&bytes);
    let index = image.len() as u64;
    for s in starts {
        image.extend_from_slice(&(base + u64::from(s)).to_le_bytes());
    }
    Ok(index)
}
