//! Opening a path below a cgroup mount without following any symlink: `openat2(2)` with
//! `RESOLVE_NO_SYMLINKS | RESOLVE_BENEATH` where the kernel has it (Linux ≥ 5.6), otherwise a
//! component-wise walk of `openat(O_NOFOLLOW)` from the mount's directory fd. The mount point
//! itself (`--cgroup-root` and the detected hierarchies) is opened normally: it is the
//! operator's configuration; everything below it (pod and container cgroups, their files) is
//! data another party could have planted a link in.

use std::fs::File;
use std::io;
use std::path::{Component, Path};
use std::sync::atomic::{AtomicBool, Ordering};

use nix::errno::Errno;
use nix::fcntl::{open, openat, openat2, OFlag, OpenHow, ResolveFlag};
use nix::sys::stat::Mode;

/// Set once `openat2` answered `ENOSYS` (kernel < 5.6, or filtered by seccomp).
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

/// Opens `rel` (relative, no `..`) below the directory `base` with `flags`; a symlink anywhere
/// below `base` fails with `ELOOP`. Never creates anything (no `O_CREAT` is ever passed).
pub fn open_beneath(base: &Path, rel: &Path, flags: OFlag) -> io::Result<File> {
    let flags = flags & !OFlag::O_CREAT;
    let parts: Vec<&std::ffi::OsStr> = rel
        .components()
        .map(|c| match c {
            Component::Normal(p) => Ok(p),
            Component::CurDir => Ok(std::ffi::OsStr::new(".")),
            _ => Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("cgroup path {} is not relative and beneath", rel.display()),
            )),
        })
        .collect::<Result<_, _>>()?;
    let dir = open(
        base,
        OFlag::O_DIRECTORY | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?;
    if parts.is_empty() {
        return Ok(File::from(openat(
            &dir,
            ".",
            flags | OFlag::O_CLOEXEC,
            Mode::empty(),
        )?));
    }
    if !NO_OPENAT2.load(Ordering::Relaxed) {
        let how = OpenHow::new()
            .flags(flags | OFlag::O_CLOEXEC)
            .resolve(ResolveFlag::RESOLVE_NO_SYMLINKS | ResolveFlag::RESOLVE_BENEATH);
        match openat2(&dir, rel, how) {
            Ok(fd) => return Ok(File::from(fd)),
            Err(Errno::ENOSYS) => NO_OPENAT2.store(true, Ordering::Relaxed),
            Err(e) => return Err(e.into()),
        }
    }
    walk(dir, &parts, flags)
}

/// The fallback: each directory component with `O_DIRECTORY | O_NOFOLLOW`, then the last one
/// with `O_NOFOLLOW`.
fn walk(
    mut dir: std::os::fd::OwnedFd,
    parts: &[&std::ffi::OsStr],
    flags: OFlag,
) -> io::Result<File> {
    let (last, dirs) = parts.split_last().expect("non-empty path");
    for part in dirs {
        dir = match openat(
            &dir,
            *part,
            OFlag::O_DIRECTORY | OFlag::O_NOFOLLOW | OFlag::O_RDONLY | OFlag::O_CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => fd,
            // `O_DIRECTORY | O_NOFOLLOW` on a link says ENOTDIR: tell a link apart
            Err(Errno::ENOTDIR) => {
                let st =
                    nix::sys::stat::fstatat(&dir, *part, nix::fcntl::AtFlags::AT_SYMLINK_NOFOLLOW)?;
                let link = st.st_mode & nix::libc::S_IFMT == nix::libc::S_IFLNK;
                return Err(if link { Errno::ELOOP } else { Errno::ENOTDIR }.into());
            }
            Err(e) => return Err(e.into()),
        };
    }
    Ok(File::from(openat(
        &dir,
        *last,
        flags | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
        Mode::empty(),
    )?))
}

/// True for the error a symlink below the base gives (`ELOOP`).
pub fn is_symlink_error(e: &io::Error) -> bool {
    e.raw_os_error() == Some(nix::libc::ELOOP)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn tree() -> tempfile::TempDir {
        let root = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(root.path().join("a/b")).unwrap();
        std::fs::write(root.path().join("a/b/f"), "1").unwrap();
        std::fs::create_dir(root.path().join("target")).unwrap();
        std::fs::write(root.path().join("target/f"), "2").unwrap();
        std::os::unix::fs::symlink(root.path().join("target"), root.path().join("a/link")).unwrap();
        std::os::unix::fs::symlink(root.path().join("target/f"), root.path().join("a/b/flink"))
            .unwrap();
        root
    }

    fn check(open: impl Fn(&Path, &Path) -> io::Result<File>) {
        let root = tree();
        let mut s = String::new();
        open(root.path(), Path::new("a/b/f"))
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        assert_eq!(s, "1");
        for rel in ["a/link/f", "a/b/flink", "a/link"] {
            let e = open(root.path(), Path::new(rel)).unwrap_err();
            assert!(is_symlink_error(&e), "{rel}: {e}");
        }
        assert!(open(root.path(), Path::new("../x")).is_err());
        assert!(open(root.path(), Path::new("/etc/passwd")).is_err());
        assert_eq!(
            open(root.path(), Path::new("a/none")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
    }

    #[test]
    fn openat2_refuses_symlinks_below_the_base() {
        check(|base, rel| open_beneath(base, rel, OFlag::O_RDONLY));
    }

    #[test]
    fn the_component_walk_refuses_symlinks_below_the_base() {
        check(|base, rel| {
            let parts: Vec<_> = rel
                .components()
                .map(|c| match c {
                    Component::Normal(p) => Ok(p),
                    _ => Err(io::Error::other("not beneath")),
                })
                .collect::<Result<_, _>>()?;
            let dir = open(base, OFlag::O_DIRECTORY | OFlag::O_RDONLY, Mode::empty())?;
            walk(dir, &parts, OFlag::O_RDONLY)
        });
    }
}
