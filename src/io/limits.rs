//! The process's file descriptors: a systemd service starts with a soft
//! limit of 1,024, which idle HTTP connections alone could use up, leaving
//! none for the webhook client. The soft limit is raised to the hard one at
//! start, and the HTTP listener takes at most half of what there is.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Raises the soft limit on open files to the hard limit. Returns the
/// limits before and after.
pub fn raise_fd_limit() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE)?;
    if soft < hard {
        setrlimit(Resource::RLIMIT_NOFILE, hard, hard)?;
    }
    Ok((soft, getrlimit(Resource::RLIMIT_NOFILE)?.0))
}

/// The soft limit on open files now.
pub fn fd_limit() -> u64 {
    getrlimit(Resource::RLIMIT_NOFILE).map_or(1024, |(soft, _)| soft)
}

/// The HTTP connections allowed open at once: the configured cap, and at
/// most half the descriptors, so the proxy's own sockets, the database
/// and outgoing provider connections always find one.
pub(super) fn http_connection_cap(configured: usize, fds: u64) -> usize {
    configured
        .min(usize::try_from(fds / 2).unwrap_or(usize::MAX))
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_http_cap_leaves_half_the_descriptors() {
        assert_eq!(http_connection_cap(1024, 1024), 512);
        assert_eq!(http_connection_cap(1024, 65536), 1024);
        assert_eq!(http_connection_cap(10, 1), 1);
    }
}
