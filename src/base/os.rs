//! Facts of the host this process runs on, and the one request it makes of the allocator.
//! Any thread; no state.

/// The host name (the kernel's), cut to the 64 characters of `nodes.name`.
pub fn host_name() -> String {
    let mut buf = [0u8; 256];
    // SAFETY: gethostname writes at most buf.len() bytes into buf.
    let rc = unsafe { libc::gethostname(buf.as_mut_ptr().cast(), buf.len()) };
    let end = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
    let name = String::from_utf8_lossy(&buf[..end]).into_owned();
    if rc != 0 || name.is_empty() {
        return "localhost".into();
    }
    name.chars().take(64).collect()
}

/// Gives the memory freed after the first load (or a large scrape) back to the system: glibc
/// keeps a freed peak otherwise, and 100,000 rows read at start would stay in the daemon's RSS
/// for good.
pub fn release_free_memory() {
    // SAFETY: malloc_trim only walks the allocator's own free lists.
    unsafe {
        libc::malloc_trim(0);
    }
}
