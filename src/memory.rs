//! The process's own memory, set up once at the start of `main`: the allocator's mmap threshold,
//! and the pages of the relocation table given back once the loader is done with them.
//!
//! The only `unsafe` of regtrust lives here (the library forbids it): two calls that change how
//! memory is kept, never what it holds.

/// glibc's allocator, set before anything is allocated in earnest:
/// - buffers of 128 KiB and more (a /metrics page at 1,000 endpoints is megabytes) come from mmap
///   and go back on free. Left to glibc's dynamic threshold, they move into the heap after the
///   first free and stay resident (scripts/bench: 2.8 KiB per registry at 1,000);
/// - two arenas: the event loop's, and one for the threads that work for it (blocking pool,
///   lookups, the file watcher). glibc gives each thread its own, up to 8 per core, each with its
///   own free space kept resident; with two, RssAnon was 0.1-0.3 MiB lower at 1 / 50 / 200
///   endpoints and the CPU per probe the same (scripts/bench, `BENCH_ARENAS`). glibc's own
///   `MALLOC_ARENA_MAX`, when set, wins.
pub(crate) fn tune_allocator() {
    #[cfg(target_env = "gnu")]
    // SAFETY: mallopt only sets allocator parameters; no allocation is in flight yet.
    unsafe {
        nix::libc::mallopt(nix::libc::M_MMAP_THRESHOLD, 128 * 1024);
        if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
            nix::libc::mallopt(nix::libc::M_ARENA_MAX, 2);
        }
    }
}

/// Gives back the resident pages of the binary's relocation table (`.rela.dyn`, or `.relr.dyn`).
///
/// A position-independent binary is relocated by the loader before `main`: it reads every entry
/// once (about 29,000 of them, 690 KiB for regtrust), and never again — with full RELRO (`-z
/// now`, Rust's default) nothing is bound lazily. The pages stay resident all the same, a tenth
/// of the agent's RSS at one endpoint (scripts/bench, `BENCH_SMAPS=1`). They are clean pages of a
/// read-only file mapping: `MADV_DONTNEED` unmaps them, and a later read (none is expected) would
/// fault the same bytes back in from the file. Returns the bytes given back (0 when the table was
/// not found, or lies where this does not touch it).
pub(crate) fn release_relocations() -> usize {
    #[cfg(all(target_os = "linux", target_pointer_width = "64"))]
    if let Some(range) = elf::relocation_pages() {
        let len = range.end - range.start;
        // SAFETY: `range` is whole pages inside a read-only, file-backed segment of this
        // executable (elf::relocation_pages checks it), holding the relocation table that the
        // loader has finished with. Nothing writes there, so no data is lost: a read after this
        // maps the same file bytes again.
        let done =
            unsafe { nix::libc::madvise(range.start as *mut _, len, nix::libc::MADV_DONTNEED) };
        return if done == 0 { len } else { 0 };
    }
    0
}

#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
mod elf {
    use std::ops::Range;

    use nix::libc;

    const DT_NULL: i64 = 0;
    const DT_RELA: i64 = 7;
    const DT_RELASZ: i64 = 8;
    const DT_RELRSZ: i64 = 35;
    const DT_RELR: i64 = 36;

    /// The main executable's segments, as the loader mapped them.
    struct Image {
        bias: usize,
        /// Read-only PT_LOAD segments, as run-time address ranges.
        read_only: Vec<Range<usize>>,
        /// Every PT_LOAD segment.
        loaded: Vec<Range<usize>>,
        dynamic: Option<usize>,
    }

    /// The whole pages of the relocation table, when it lies in one read-only segment.
    pub(super) fn relocation_pages() -> Option<Range<usize>> {
        let image = main_image()?;
        let dynamic = image.dynamic?;
        let (mut table, mut size) = (None, 0usize);
        let mut entry = dynamic as *const [u64; 2];
        for _ in 0..4096 {
            // SAFETY: PT_DYNAMIC points at the loaded dynamic section, an array of (tag, value)
            // pairs ended by DT_NULL; the count bound keeps a malformed one from running away.
            let [tag, value] = unsafe { entry.read() };
            match tag as i64 {
                DT_NULL => break,
                DT_RELA | DT_RELR => table = Some(value as usize),
                DT_RELASZ | DT_RELRSZ => size = size.max(value as usize),
                _ => {}
            }
            // SAFETY: still inside the dynamic array: the previous entry was not DT_NULL.
            entry = unsafe { entry.add(1) };
        }
        let table = table?;
        // glibc rewrites some pointers of the main program's dynamic section to run-time
        // addresses; musl does not: take whichever reading lies inside a loaded segment.
        let start = [image.bias.wrapping_add(table), table]
            .into_iter()
            .find(|a| image.loaded.iter().any(|s| s.contains(a)))?;
        let end = start.checked_add(size)?;
        let page = page_size();
        let pages = start.div_ceil(page) * page..end / page * page;
        let inside = image
            .read_only
            .iter()
            .any(|s| s.start <= pages.start && pages.end <= s.end);
        (inside && pages.start < pages.end).then_some(pages)
    }

    fn page_size() -> usize {
        // SAFETY: sysconf only reads a system constant.
        let n = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        usize::try_from(n).ok().filter(|&n| n > 0).unwrap_or(4096)
    }

    /// The first object `dl_iterate_phdr` reports: the main program.
    fn main_image() -> Option<Image> {
        let mut image: Option<Image> = None;
        // SAFETY: the callback only reads the header table the loader hands it, for the length
        // it gives, and returns 1 to stop after the first object.
        unsafe {
            libc::dl_iterate_phdr(Some(first), (&mut image as *mut Option<Image>).cast());
        }
        image
    }

    unsafe extern "C" fn first(
        info: *mut libc::dl_phdr_info,
        _size: libc::size_t,
        data: *mut libc::c_void,
    ) -> libc::c_int {
        // SAFETY: dl_iterate_phdr passes a valid info for the duration of the call, and `data`
        // is the `Option<Image>` main_image passed.
        let (info, out) = unsafe { (&*info, &mut *data.cast::<Option<Image>>()) };
        let bias = info.dlpi_addr as usize;
        let headers: &[libc::Elf64_Phdr] = if info.dlpi_phdr.is_null() {
            &[]
        } else {
            // SAFETY: dlpi_phdr points at dlpi_phnum program headers of the loaded object.
            unsafe { std::slice::from_raw_parts(info.dlpi_phdr, usize::from(info.dlpi_phnum)) }
        };
        let mut image = Image {
            bias,
            read_only: Vec::new(),
            loaded: Vec::new(),
            dynamic: None,
        };
        for h in headers {
            let start = bias.wrapping_add(h.p_vaddr as usize);
            let range = start..start.wrapping_add(h.p_memsz as usize);
            match h.p_type {
                libc::PT_LOAD => {
                    if h.p_flags & libc::PF_W == 0 {
                        image.read_only.push(range.clone());
                    }
                    image.loaded.push(range);
                }
                libc::PT_DYNAMIC => image.dynamic = Some(start),
                _ => {}
            }
        }
        *out = Some(image);
        1
    }
}

#[cfg(all(test, target_os = "linux", target_pointer_width = "64"))]
mod tests {
    use super::*;

    /// The test binary is a PIE with relocations too: the table is found, lies in a read-only
    /// segment, and reads back the same bytes after its pages are given back.
    #[test]
    fn relocation_pages_are_found_and_read_back_unchanged() {
        let pages = elf::relocation_pages().expect("a PIE test binary has a relocation table");
        assert!(pages.start < pages.end);
        let sum = |r: &std::ops::Range<usize>| {
            // SAFETY: relocation_pages returns mapped, readable pages of this executable.
            let bytes =
                unsafe { std::slice::from_raw_parts(r.start as *const u8, r.end - r.start) };
            bytes
                .iter()
                .fold(0u64, |h, &b| h.rotate_left(5) ^ u64::from(b))
        };
        let before = sum(&pages);
        assert_eq!(release_relocations(), pages.end - pages.start);
        assert_eq!(sum(&pages), before);
    }
}
