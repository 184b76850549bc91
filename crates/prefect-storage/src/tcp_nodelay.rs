//! TCP_NODELAY for PostgreSQL connections.
//!
//! sqlx 0.9.0 stopped disabling Nagle's algorithm on its sockets (sqlx issue
//! #4335, fixed upstream in #4336 but not released). A query whose messages go
//! out in two writes then waits for the server's delayed ACK: about 40 ms per
//! round trip on Linux loopback. Under load that capped log ingest on PostgreSQL
//! near 4,500 logs/s with the CPUs idle. Until a fixed sqlx is out, every new
//! pool connection sets TCP_NODELAY on the process's TCP sockets, which is what
//! every socket of this server wants (actix sets it on accepted connections
//! too). Remove this module when sqlx sets it again.

#![allow(unsafe_code)]

/// Sets TCP_NODELAY on every socket descriptor of this process (Linux; elsewhere a no-op).
pub(crate) fn set_on_process_sockets() {
    #[cfg(target_os = "linux")]
    {
        let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return };
        for entry in entries.flatten() {
            let Ok(fd) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
            let is_socket = std::fs::read_link(entry.path()).is_ok_and(|target| target.to_string_lossy().starts_with("socket:"));
            if !is_socket {
                continue;
            }
            let on: libc::c_int = 1;
            // SAFETY: plain setsockopt on a descriptor number with a pointer to a live c_int of
            // the size passed. If the descriptor was closed (or reused) since it was listed, the
            // call fails or sets the same harmless option on another socket; nothing is borrowed.
            unsafe {
                libc::setsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NODELAY,
                    (&on as *const libc::c_int).cast(),
                    std::mem::size_of::<libc::c_int>() as libc::socklen_t,
                );
            }
        }
    }
}
