//! `kheaders-image`: pack a kernel's headers into a mountable squashfs image,
//! inspect one, verify one against a directory or upstream's tar.xz.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};

use kheaders_image::compress::{Algorithm, Compressor};
use kheaders_image::format::{parse_image, release_field, seal, BlockFormat, FsFormat, FsHeader};
use kheaders_image::inspect::inspect;
use kheaders_image::layout::LayoutKind;
use kheaders_image::output::write_atomically;
use kheaders_image::pack::{pack, PackOptions, PackedData, DEFAULT_BLOCK_SIZE, DEFAULT_PCLUSTER_SIZE};
use kheaders_image::parallel::default_jobs;
use kheaders_image::progress::Progress;
use kheaders_image::select::{KernelTree, UTSRELEASE_H};
use kheaders_image::squashfs::records::{check_block_size, COMPRESSOR_LZ4, COMPRESSOR_XZ, COMPRESSOR_ZSTD};
use kheaders_image::tarball;
use kheaders_image::time::{image_time_from_env, parse_date};
use kheaders_image::tree::HeaderTree;
use kheaders_image::verify::{compare, drop_build_order_entries};

#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Pack the headers of a kernel tree (the set CONFIG_IKHEADERS carries,
    /// comments stripped the same way), or a kheaders tarball as it is,
    /// into a squashfs (or EROFS) image.
    Pack {
        /// Kernel tree: a source tree, an in-tree build, or an O= build
        /// directory (its `source` link leads to the source tree). Or a
        /// kheaders tarball (kheaders_data.tar.xz, /sys/kernel/kheaders.tar.xz).
        tree: PathBuf,
        /// Output image file (`-` for standard output). Written atomically.
        #[arg(short, long)]
        output: PathBuf,
        /// Source tree, when TREE is a build directory without a `source` link.
        #[arg(long)]
        source: Option<PathBuf>,
        /// Kernel arch as under arch/ (SRCARCH). Default: the arch TREE was
        /// built for, else the host's; a tarball's own (must match).
        #[arg(long)]
        arch: Option<String>,
        /// Filesystem: `squashfs`, or `erofs` for kernels without squashfs
        /// (Android's GKI: EROFS with LZ4; Linux 6.1 or later).
        #[arg(long, value_enum, default_value_t = FsFormat::Squashfs)]
        format: FsFormat,
        /// Squashfs data block size; for EROFS the largest compressed
        /// cluster (power of two, 4K to 1M; default 128K, EROFS 32K).
        #[arg(short, long, value_parser = parse_size)]
        block_size: Option<u32>,
        /// Where headers go in the image: `includes` stores the headers most
        /// others include in include order with blocks of their own (fast
        /// compiles against the mount), the rest in directory order;
        /// `directory` stores everything in directory order (as mksquashfs).
        #[arg(long, value_enum, default_value_t = LayoutKind::Includes)]
        layout: LayoutKind,
        /// Block compressor: `xz` (squashfs' default, smallest), `zstd`
        /// (faster reads), `lz4` or `lz4hc` (fastest reads, largest; the
        /// same format, lz4hc's encoder is slower and compresses better;
        /// EROFS takes these two, lz4hc by default).
        #[arg(long, value_enum)]
        compressor: Option<Algorithm>,
        /// xz preset: 0-9, optionally with `e` for the extreme variant (default 6).
        #[arg(long, value_parser = parse_preset)]
        xz_preset: Option<u32>,
        /// zstd level (1-22, default 19) or lz4hc level (1-12, default 12).
        #[arg(long)]
        level: Option<u32>,
        /// Time stamp for every entry, seconds or a `date -d` string.
        /// Default: a tarball's newest entry time; for trees
        /// $KBUILD_BUILD_TIMESTAMP, else $SOURCE_DATE_EPOCH, else 0.
        #[arg(long)]
        mtime: Option<String>,
        /// Compression threads. Default: all CPUs.
        #[arg(short, long)]
        jobs: Option<usize>,
        /// No progress or summary.
        #[arg(short, long)]
        quiet: bool,
    },
    /// Add the trailer kheaders_blk checks to a squashfs image made by another
    /// tool (e.g. `mksquashfs -comp zstd`), so that the module can embed it.
    Seal {
        /// A squashfs 4.0 file.
        input: PathBuf,
        /// Output image file. Written atomically.
        #[arg(short, long)]
        output: PathBuf,
        /// `UTS_RELEASE` of the headers in it (the module warns when it is
        /// not its own kernel's).
        #[arg(long)]
        release: Option<String>,
    },
    /// Print an image's superblock and statistics; checks it end to end.
    Inspect {
        image: PathBuf,
        /// Machine-readable output.
        #[arg(long)]
        json: bool,
    },
    /// Check that an image holds exactly the same paths, types, modes,
    /// symlink targets and bytes as a directory or a kheaders .tar.xz.
    Verify {
        image: PathBuf,
        /// A directory, or a tar(.xz) archive such as kernel/kheaders_data.tar.xz.
        reference: PathBuf,
        /// Differences to print at most.
        #[arg(long, default_value_t = 20)]
        max_diffs: usize,
    },
}

fn parse_size(s: &str) -> Result<u32, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 1024),
        Some((i, 'm' | 'M')) => (&s[..i], 1024 * 1024),
        _ => (s, 1),
    };
    let n: u32 = num.parse().map_err(|_| format!("{s:?} is not a size like 131072, 128K or 1M"))?;
    let bs = n.checked_mul(mult).ok_or_else(|| format!("{s} is too large"))?;
    check_block_size(bs).map_err(|e| e.to_string())?;
    Ok(bs)
}

fn parse_preset(s: &str) -> Result<u32, String> {
    let (level, extreme) = match s.strip_suffix('e') {
        Some(l) => (l, liblzma::stream::PRESET_EXTREME),
        None => (s, 0),
    };
    match level.parse::<u32>() {
        Ok(l) if l <= 9 => Ok(l | extreme),
        _ => Err(format!("{s:?} is not an xz preset (0-9, optionally followed by e)")),
    }
}

fn main() -> ExitCode {
    kheaders_image::tree::quiet_caught_panics();
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("kheaders-image: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cmd: Command) -> Result<ExitCode> {
    match cmd {
        Command::Pack {
            tree,
            output,
            source,
            arch,
            format,
            block_size,
            layout,
            compressor,
            xz_preset,
            level,
            mtime,
            jobs,
            quiet,
        } => {
            let start = Instant::now();
            let compressor = compressor.unwrap_or(format.compressors()[0]);
            // Before the tree is read, as pack itself would refuse it.
            format.check_compressor(compressor)?;
            let block_size = block_size.unwrap_or(match format {
                FsFormat::Squashfs => DEFAULT_BLOCK_SIZE,
                FsFormat::Erofs => DEFAULT_PCLUSTER_SIZE,
            });
            let level = match (compressor, xz_preset, level) {
                (Algorithm::Xz, _, Some(_)) => bail!("--level is for zstd and lz4hc; xz takes --xz-preset"),
                (Algorithm::Xz, preset, None) => preset,
                (other, Some(_), _) => bail!("--xz-preset is for xz, not {}", other.name()),
                (_, None, level) => level,
            };
            // Bad levels fail before the tree is read.
            Compressor::new(compressor, level, block_size)?;
            if output == Path::new("-") && std::io::stdout().is_terminal() {
                bail!("refusing to write an image to a terminal; redirect standard output or use -o FILE");
            }
            let jobs = jobs.unwrap_or_else(default_jobs).max(1);
            let progress = Progress::new(quiet);
            // A tarball's own time stamp, not the environment's: one tarball, one image.
            let (headers, kernel_release, input_mtime) = if tarball::is_tarball(&tree) {
                if source.is_some() {
                    bail!("--source is for kernel trees; {} is a file", tree.display());
                }
                let t = tarball::for_pack(&tree, arch.as_deref())?;
                if t.release.is_none() && !quiet {
                    eprintln!(
                        "kheaders-image: warning: {} has no {UTSRELEASE_H}; the image records no release",
                        tree.display()
                    );
                }
                (t.tree, t.release, Some(t.mtime))
            } else {
                let kt = KernelTree::resolve(&tree, source.as_deref(), arch.as_deref())?;
                if !kt.is_configured() && !quiet {
                    eprintln!(
                        "kheaders-image: warning: {} is not configured; the image lacks include/generated/*",
                        kt.build_dir().display()
                    );
                }
                (HeaderTree::from_kernel(&kt, jobs, &progress)?, kt.kernel_release(), None)
            };
            let mtime = match (mtime, input_mtime) {
                (Some(m), _) => parse_date(&m).context("--mtime")?,
                (None, Some(m)) => m,
                (None, None) => image_time_from_env()?,
            };
            let opts =
                PackOptions { format, block_size, mtime, jobs, compressor, level, kernel_release, layout };
            let packed = pack(&headers, &opts, &progress)?;
            let image = packed.image;
            write_atomically(&output, &image)?;
            if !quiet {
                let s = headers.stats();
                let data = match &packed.data {
                    PackedData::Squashfs(d) => format!(
                        "squashfs, {}, {} KiB blocks, {} files with blocks of their own, {} fragment blocks",
                        compressor.name(),
                        block_size / 1024,
                        d.own_block_files,
                        d.fragment_blocks
                    ),
                    PackedData::Erofs(d) => format!(
                        "erofs, {}, {} pclusters of up to {} KiB ({} stored), {} KiB of metadata",
                        compressor.name(),
                        d.pclusters,
                        block_size / 1024,
                        d.plain_pclusters,
                        d.metadata_bytes / 1024
                    ),
                };
                eprintln!(
                    "kheaders-image: {}: {} files, {} directories, {} symlinks; {:.1} MiB of headers in {:.2} MiB ({:.1}%), {data}, {:.1} s",
                    output.display(),
                    s.files,
                    s.dirs,
                    s.symlinks,
                    s.file_bytes as f64 / 1048576.0,
                    image.len() as f64 / 1048576.0,
                    100.0 * image.len() as f64 / s.file_bytes.max(1) as f64,
                    start.elapsed().as_secs_f64()
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Seal { input, output, release } => {
            let release = release_field(release.as_deref())?;
            let bytes = read_image(&input)?;
            let parsed = parse_image(&bytes).with_context(|| format!("{}", input.display()))?;
            if parsed.trailer.is_some() {
                bail!("{} already has a kheaders-image trailer", input.display());
            }
            let FsHeader::Squashfs { superblock: sb, .. } = parsed.fs else {
                bail!(
                    "{}: seal takes squashfs images; EROFS images come from pack --format erofs",
                    input.display()
                );
            };
            let squashfs = parsed.squashfs.to_vec();
            let id = sb.compressor.get();
            let Some(block_format) = BlockFormat::of_squashfs(id) else {
                bail!("{}: squashfs compressor {id}, which the trailer cannot name", input.display());
            };
            // backhand (as built here) reads xz, zstd and lz4: others get no counts.
            let stats = if [COMPRESSOR_XZ, COMPRESSOR_ZSTD, COMPRESSOR_LZ4].contains(&id) {
                HeaderTree::from_image_bytes(&squashfs)
                    .with_context(|| format!("{}", input.display()))?
                    .stats()
            } else {
                eprintln!("kheaders-image: note: a {} image: file counts recorded as 0", block_format.name());
                Default::default()
            };
            let image =
                seal(squashfs, FsFormat::Squashfs, sb.block_size.get(), block_format, &stats, release)?;
            write_atomically(&output, &image)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Inspect { image, json } => {
            let bytes = read_image(&image)?;
            let info = inspect(&bytes).with_context(|| format!("{}", image.display()))?;
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("{}: {info}", image.display());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Verify { image, reference, max_diffs } => {
            let bytes = read_image(&image)?;
            let parsed = parse_image(&bytes).with_context(|| format!("{}", image.display()))?;
            parsed.check_crc().with_context(|| format!("{}", image.display()))?;
            let actual =
                HeaderTree::from_image_bytes(&bytes).with_context(|| format!("{}", image.display()))?;
            let mut expected = if reference.is_dir() {
                HeaderTree::from_dir(&reference)?
            } else if reference.exists() {
                HeaderTree::from_tarball(&reference)?
            } else {
                bail!("reference {} does not exist", reference.display());
            };
            if let Some(path) = drop_build_order_entries(&mut expected, &actual) {
                println!("note: the reference's {path} is not compared (left out of images by design)");
            }
            let diffs = compare(&expected, &actual);
            let s = expected.stats();
            if diffs.is_empty() {
                println!(
                    "{} matches {}: {} files, {} directories, {} symlinks, {} bytes identical",
                    image.display(),
                    reference.display(),
                    s.files,
                    s.dirs,
                    s.symlinks,
                    s.file_bytes
                );
                return Ok(ExitCode::SUCCESS);
            }
            for d in diffs.iter().take(max_diffs) {
                println!("{d}");
            }
            if diffs.len() > max_diffs {
                println!("... and {} more", diffs.len() - max_diffs);
            }
            eprintln!(
                "kheaders-image: {} differs from {} in {} place(s)",
                image.display(),
                reference.display(),
                diffs.len()
            );
            Ok(ExitCode::FAILURE)
        }
    }
}

fn read_image(path: &Path) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("reading {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::parse_size;

    #[test]
    fn block_sizes() {
        assert_eq!(parse_size("128K"), Ok(131072));
        assert_eq!(parse_size("1M"), Ok(1 << 20));
        assert_eq!(parse_size("4096"), Ok(4096));
        assert!(parse_size("100K").is_err());
        assert!(parse_size("2M").is_err());
        assert!(parse_size("2k").is_err());
        assert!(parse_size("x").is_err());
    }

    #[test]
    fn presets() {
        use super::parse_preset;
        assert_eq!(parse_preset("6"), Ok(6));
        assert_eq!(parse_preset("9e"), Ok(9 | liblzma::stream::PRESET_EXTREME));
        assert!(parse_preset("10").is_err());
        assert!(parse_preset("e").is_err());
    }
}
