//! The data section: file blocks and fragment blocks in plan order,
//! compressed in parallel, duplicates sharing the first copy's data.

use std::collections::HashMap;

use anyhow::{bail, ensure, Context, Result};

use super::records::{FragmentEntry, BLOCK_UNCOMPRESSED};
use super::DataStats;
use crate::compress::Compressor;
use crate::hierarchy::Hierarchy;
use crate::layout::Placement;
use crate::parallel::parallel_map;
use crate::progress::Progress;
use crate::tree::Node;

/// Where a regular file's data is, as its inode records it.
#[derive(Debug, Clone, Default)]
pub(super) struct FileData {
    pub start: u64,
    pub block_sizes: Vec<u32>,
    /// Fragment block index and offset in it.
    pub fragment: Option<(u32, u32)>,
}

/// One block of the data section, in data order.
enum Slot<'t> {
    Data(&'t [u8]),
    /// Index into the fragment blocks.
    Fragment(usize),
}

/// Where a file's bytes went before the blocks had positions.
#[derive(Clone)]
enum Source {
    /// Slots `first..end`.
    Blocks {
        first: usize,
        end: usize,
    },
    Fragment {
        index: usize,
        offset: u32,
    },
    /// Same bytes as this (earlier) entry.
    Same(usize),
}

pub(super) struct Data {
    /// Per entry: `None` for non-files and empty files.
    pub files: Vec<Option<FileData>>,
    pub fragments: Vec<FragmentEntry>,
    pub stats: DataStats,
}

/// Append the data section for `plan` (every regular file exactly once) to `image`.
pub(super) fn write(
    h: &Hierarchy<'_>,
    plan: &[Placement<'_>],
    block_size: u32,
    comp: &Compressor,
    jobs: usize,
    image: &mut Vec<u8>,
    progress: &Progress,
) -> Result<Data> {
    let bs = block_size as usize;
    let mut planned = vec![false; h.entries.len()];
    let mut sources: Vec<Option<Source>> = vec![None; h.entries.len()];
    let mut slots: Vec<Slot<'_>> = Vec::new();
    let mut frag_raw: Vec<Vec<u8>> = Vec::new();
    let mut by_content: HashMap<&[u8], usize> = HashMap::new();
    let mut cur_frag: Vec<u8> = Vec::new();
    let mut stats = DataStats::default();
    for p in plan {
        let Some(&i) = h.index_of_path.get(p.path) else {
            bail!("layout names {}, which is not in the tree", p.path)
        };
        let Node::File { data, .. } = h.entries[i].node else {
            bail!("layout names {}, which is not a file", p.path)
        };
        ensure!(!std::mem::replace(&mut planned[i], true), "layout names {} twice", p.path);
        ensure!(
            data.len() < 1 << 32,
            "{}: {} bytes, more than squashfs' basic file inode holds",
            p.path,
            data.len()
        );
        if data.is_empty() {
            continue;
        }
        if let Some(&first) = by_content.get(&data[..]) {
            sources[i] = Some(Source::Same(first));
            stats.duplicate_files += 1;
            continue;
        }
        by_content.insert(&data[..], i);
        stats.data_bytes += data.len() as u64;
        if p.own_blocks || data.len() >= bs {
            let first = slots.len();
            slots.extend(data.chunks(bs).map(Slot::Data));
            sources[i] = Some(Source::Blocks { first, end: slots.len() });
            stats.own_block_files += 1;
            continue;
        }
        if !cur_frag.is_empty() && (p.new_fragment || cur_frag.len() + data.len() > bs) {
            slots.push(Slot::Fragment(frag_raw.len()));
            frag_raw.push(std::mem::take(&mut cur_frag));
        }
        sources[i] = Some(Source::Fragment { index: frag_raw.len(), offset: cur_frag.len() as u32 });
        cur_frag.extend_from_slice(data);
        stats.fragmented_files += 1;
    }
    if !cur_frag.is_empty() {
        slots.push(Slot::Fragment(frag_raw.len()));
        frag_raw.push(cur_frag);
    }
    if let Some(e) = h
        .entries
        .iter()
        .zip(&planned)
        .find_map(|(e, &p)| (matches!(e.node, Node::File { .. }) && !p).then_some(e))
    {
        bail!("layout leaves out {}", e.path);
    }
    stats.fragment_blocks = u32::try_from(frag_raw.len()).context("too many fragment blocks")?;

    let blocks: Vec<&[u8]> = slots
        .iter()
        .map(|s| match s {
            Slot::Data(d) => *d,
            Slot::Fragment(f) => &frag_raw[*f][..],
        })
        .collect();
    let total = blocks.len() as u64;
    let compressed =
        parallel_map(&blocks, jobs, |b| comp.compress(b), |d| progress.update("compressing", d, total));

    // (start, size as the format records it) of each slot.
    let mut placed: Vec<(u64, u32)> = Vec::with_capacity(slots.len());
    for (b, c) in blocks.iter().zip(compressed) {
        let c = c?;
        let start = image.len() as u64;
        if c.len() < b.len() {
            placed.push((start, c.len() as u32));
            image.extend_from_slice(&c);
        } else {
            placed.push((start, b.len() as u32 | BLOCK_UNCOMPRESSED));
            image.extend_from_slice(b);
        }
    }
    let mut fragments =
        vec![FragmentEntry { start_block: 0.into(), size: 0.into(), unused: 0.into() }; frag_raw.len()];
    for (s, &(start, size)) in slots.iter().zip(&placed) {
        if let Slot::Fragment(f) = s {
            fragments[*f] = FragmentEntry { start_block: start.into(), size: size.into(), unused: 0.into() };
        }
    }
    let mut files: Vec<Option<FileData>> = sources
        .iter()
        .map(|s| match s {
            Some(Source::Blocks { first, end }) => Some(FileData {
                start: placed[*first].0,
                block_sizes: placed[*first..*end].iter().map(|p| p.1).collect(),
                fragment: None,
            }),
            Some(Source::Fragment { index, offset }) => {
                Some(FileData { start: 0, block_sizes: Vec::new(), fragment: Some((*index as u32, *offset)) })
            }
            Some(Source::Same(_)) | None => None,
        })
        .collect();
    for (i, s) in sources.iter().enumerate() {
        if let Some(Source::Same(first)) = s {
            files[i] = files[*first].clone();
        }
    }
    Ok(Data { files, fragments, stats })
}
