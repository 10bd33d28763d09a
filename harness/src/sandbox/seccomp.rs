//! The seccomp filters every sandboxed process runs under, compiled once with `seccompiler`
//! (the Firecracker project's pure-Rust BPF compiler) and loaded by bubblewrap
//! (`--add-seccomp-fd`) just before it execs the command.
//!
//! A deny list on top of the namespaces: agents run compilers, interpreters and package
//! managers, so everything they plausibly need stays allowed, and the kernel interfaces they
//! never need (and that are the usual way out of a sandbox) fail:
//!
//! - `EPERM`: `ptrace`, `process_vm_readv`/`writev`, `pidfd_getfd`; the key store (`keyctl`,
//!   `add_key`, `request_key`); `bpf`, `perf_event_open`, `userfaultfd`, `io_uring_*`; the mount
//!   family (`mount`, `umount2`, `pivot_root`, `chroot`, `open_tree`, `move_mount`, `fsopen`,
//!   `fsconfig`, `fsmount`, `fspick`, `mount_setattr`); namespaces (`unshare`, `setns`, and
//!   `clone` with any `CLONE_NEW*` flag); kernel modules and `kexec`; `reboot`, `swapon`/`off`,
//!   `syslog`, `acct`, quotas, clock setting, `open_by_handle_at`, `iopl`/`ioperm`, and obsolete
//!   calls (`uselib`, `ustat`, `sysfs`, `_sysctl`, `vhangup`, `nfsservctl`, ...).
//! - `ENOSYS`: `clone3`, whose flags live in memory a filter cannot read; glibc then falls back
//!   to `clone`, whose flags the filter checks.
//! - `EPERM` for every x32 system call (numbers with bit 30 set), which would otherwise reach the
//!   same kernel code under numbers the deny list does not name. `seccompiler` cannot express a
//!   range of numbers, so this one 6-instruction program is built by hand.
//!
//! A process of another architecture (32-bit x86 through `int 0x80`) is killed by
//! `seccompiler`'s architecture check. Only x86-64 has a filter; elsewhere sandboxes run
//! without one (see [`Filters::describe`]).
//!
//! The programs are written to unnamed temporary files the server keeps open; the launcher
//! opens `/proc/<server pid>/fd/<n>` for each command, so every `bwrap` reads its own copy from
//! the start and nothing is inherited by other children of the server.

use std::io::Write;
use std::os::fd::AsRawFd;
use std::path::PathBuf;
use std::sync::Arc;

use super::Error;

/// The compiled programs, one temporary file each.
#[derive(Clone, Debug, Default)]
pub(crate) struct Filters {
    files: Arc<Vec<std::fs::File>>,
}

impl Filters {
    /// Compile the filters for this machine's architecture and write them out.
    pub(crate) fn new() -> Result<Self, Error> {
        let programs = programs()?;
        let mut files = Vec::with_capacity(programs.len());
        for program in programs {
            let mut file = tempfile::tempfile().map_err(|e| Error::Seccomp(e.to_string()))?;
            file.write_all(&program)
                .map_err(|e| Error::Seccomp(e.to_string()))?;
            files.push(file);
        }
        Ok(Self {
            files: Arc::new(files),
        })
    }

    /// The paths the launcher opens, one per program.
    pub(crate) fn paths(&self) -> Vec<PathBuf> {
        let pid = std::process::id();
        self.files
            .iter()
            .map(|f| PathBuf::from(format!("/proc/{pid}/fd/{}", f.as_raw_fd())))
            .collect()
    }

    pub(crate) fn describe(&self) -> &'static str {
        if self.files.is_empty() {
            "none (no filter for this architecture)"
        } else {
            "deny list (EPERM), clone3 (ENOSYS), x32 (EPERM)"
        }
    }
}

/// The BPF programs as bytes (`struct sock_filter` in native byte order), empty on
/// architectures without a filter.
#[cfg(target_arch = "x86_64")]
fn programs() -> Result<Vec<Vec<u8>>, Error> {
    use seccompiler::{
        BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
        SeccompRule, TargetArch,
    };
    use std::collections::BTreeMap;

    let fail = |e: &dyn std::fmt::Display| Error::Seccomp(e.to_string());
    let mut deny: BTreeMap<i64, Vec<SeccompRule>> =
        DENIED.iter().map(|&nr| (nr, Vec::new())).collect();
    // `clone` creating any namespace. `CLONE_NEWTIME` (0x80) is not a `clone` flag: that bit
    // is part of the exit signal there.
    let mut clone_rules = Vec::new();
    for flag in [
        libc::CLONE_NEWNS,
        libc::CLONE_NEWCGROUP,
        libc::CLONE_NEWUTS,
        libc::CLONE_NEWIPC,
        libc::CLONE_NEWUSER,
        libc::CLONE_NEWPID,
        libc::CLONE_NEWNET,
    ] {
        let flag = u64::from(flag.unsigned_abs());
        let condition = SeccompCondition::new(
            0,
            SeccompCmpArgLen::Dword,
            SeccompCmpOp::MaskedEq(flag),
            flag,
        )
        .map_err(|e| fail(&e))?;
        clone_rules.push(SeccompRule::new(vec![condition]).map_err(|e| fail(&e))?);
    }
    deny.insert(libc::SYS_clone, clone_rules);
    let arch = TargetArch::x86_64;
    let eperm = SeccompAction::Errno(libc::EPERM.unsigned_abs());
    let enosys = SeccompAction::Errno(libc::ENOSYS.unsigned_abs());
    let compile = |rules, action| -> Result<Vec<u8>, Error> {
        let filter =
            SeccompFilter::new(rules, SeccompAction::Allow, action, arch).map_err(|e| fail(&e))?;
        let program: BpfProgram = filter.try_into().map_err(|e| fail(&e))?;
        Ok(encode(program.iter().map(|i| (i.code, i.jt, i.jf, i.k))))
    };
    let enosys_rules = BTreeMap::from([(libc::SYS_clone3, Vec::new())]);
    Ok(vec![
        compile(deny, eperm)?,
        compile(enosys_rules, enosys)?,
        encode(x32_guard()),
    ])
}

#[cfg(not(target_arch = "x86_64"))]
fn programs() -> Result<Vec<Vec<u8>>, Error> {
    Ok(Vec::new())
}

/// Denied outright (`EPERM`) on x86-64.
#[cfg(target_arch = "x86_64")]
const DENIED: &[i64] = &[
    // Other processes' memory and descriptors.
    libc::SYS_ptrace,
    libc::SYS_process_vm_readv,
    libc::SYS_process_vm_writev,
    libc::SYS_pidfd_getfd,
    // The kernel key store.
    libc::SYS_keyctl,
    libc::SYS_add_key,
    libc::SYS_request_key,
    // Large kernel attack surfaces agents do not need.
    libc::SYS_bpf,
    libc::SYS_perf_event_open,
    libc::SYS_userfaultfd,
    libc::SYS_io_uring_setup,
    libc::SYS_io_uring_enter,
    libc::SYS_io_uring_register,
    libc::SYS_fanotify_init,
    libc::SYS_open_by_handle_at,
    // Mounts and namespaces.
    libc::SYS_mount,
    libc::SYS_umount2,
    libc::SYS_pivot_root,
    libc::SYS_chroot,
    libc::SYS_open_tree,
    libc::SYS_move_mount,
    libc::SYS_fsopen,
    libc::SYS_fsconfig,
    libc::SYS_fsmount,
    libc::SYS_fspick,
    libc::SYS_mount_setattr,
    libc::SYS_unshare,
    libc::SYS_setns,
    // Kernel modules, kexec, the machine itself.
    libc::SYS_init_module,
    libc::SYS_finit_module,
    libc::SYS_delete_module,
    libc::SYS_kexec_load,
    libc::SYS_kexec_file_load,
    libc::SYS_reboot,
    libc::SYS_swapon,
    libc::SYS_swapoff,
    libc::SYS_syslog,
    libc::SYS_acct,
    libc::SYS_quotactl,
    libc::SYS_quotactl_fd,
    libc::SYS_settimeofday,
    libc::SYS_clock_settime,
    libc::SYS_clock_adjtime,
    libc::SYS_adjtimex,
    libc::SYS_iopl,
    libc::SYS_ioperm,
    // Obsolete or unimplemented.
    libc::SYS_uselib,
    libc::SYS_ustat,
    libc::SYS_sysfs,
    libc::SYS__sysctl,
    libc::SYS_vhangup,
    libc::SYS_nfsservctl,
    libc::SYS_lookup_dcookie,
    libc::SYS_afs_syscall,
    libc::SYS_tuxcall,
    libc::SYS_security,
    libc::SYS_vserver,
];

/// `EPERM` for x32 system calls (x86-64 numbers with bit 30 set); everything else passes on to
/// the other filters.
#[cfg(target_arch = "x86_64")]
fn x32_guard() -> Vec<(u16, u8, u8, u32)> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD (0) | BPF_W (0) | BPF_ABS (0x20)
    const JEQ_K: u16 = 0x05 | 0x10; // BPF_JMP | BPF_JEQ | BPF_K
    const JGE_K: u16 = 0x05 | 0x30; // BPF_JMP | BPF_JGE | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    const ARCH_OFFSET: u32 = 4; // offsetof(struct seccomp_data, arch)
    const NR_OFFSET: u32 = 0; // offsetof(struct seccomp_data, nr)
    const AUDIT_ARCH_X86_64: u32 = 0xc000_003e;
    const X32_SYSCALL_BIT: u32 = 0x4000_0000;
    const RET_ALLOW: u32 = 0x7fff_0000;
    const RET_ERRNO: u32 = 0x0005_0000;
    vec![
        (LD_W_ABS, 0, 0, ARCH_OFFSET),
        // Another architecture: not this filter's business (the deny list kills it).
        (JEQ_K, 0, 3, AUDIT_ARCH_X86_64),
        (LD_W_ABS, 0, 0, NR_OFFSET),
        (JGE_K, 0, 1, X32_SYSCALL_BIT),
        (RET_K, 0, 0, RET_ERRNO | libc::EPERM.unsigned_abs()),
        (RET_K, 0, 0, RET_ALLOW),
    ]
}

/// `struct sock_filter` array as bytes.
fn encode(instructions: impl IntoIterator<Item = (u16, u8, u8, u32)>) -> Vec<u8> {
    let mut out = Vec::new();
    for (code, jt, jf, k) in instructions {
        out.extend_from_slice(&code.to_ne_bytes());
        out.push(jt);
        out.push(jf);
        out.extend_from_slice(&k.to_ne_bytes());
    }
    out
}

#[cfg(all(test, target_arch = "x86_64"))]
mod tests {
    use super::*;

    #[test]
    fn compiles_three_programs_of_whole_instructions() {
        let programs = programs().unwrap();
        assert_eq!(programs.len(), 3);
        for p in &programs {
            assert!(!p.is_empty() && p.len() % 8 == 0 && p.len() / 8 <= 4096);
        }
        let guard = &programs[2];
        assert_eq!(guard.len(), 6 * 8);
        // Jumps stay inside the program: every jump lands on one of its instructions.
        for (i, (code, jt, jf, _)) in x32_guard().into_iter().enumerate() {
            if code & 0x07 == 0x05 {
                assert!(i + 1 + usize::from(jt.max(jf)) < 6);
            }
        }
    }
}
