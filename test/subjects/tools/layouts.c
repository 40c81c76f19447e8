// The sizes and field offsets of the kernel structs ckpt uses, as this
// host's C headers have them, for test/kernel.test.ts to compare with
// src/kernel/structs.ts. Not a subject. Built twice: the glibc side, and
// with -DKERNEL_SIDE the structs only the kernel's own headers declare
// (they clash with glibc's <signal.h>). Prints one line per struct and per
// field:
//   S <struct> <size>
//   F <struct> <field> <offset> <size>

#ifndef KERNEL_SIDE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <stdio.h>

#define S(t, name) printf("S %s %zu\n", name, sizeof(t))
#define F(t, name, f) printf("F %s %s %zu %zu\n", name, #f, offsetof(t, f), sizeof(((t *)0)->f))

#define K(x) printf("C " #x " %lld\n", (long long)(x))

#ifdef KERNEL_SIDE
#include <asm/signal.h>
#include <asm/sigcontext.h>
#include <asm/termbits.h>
#include <asm/ioctls.h>
#include <linux/tty.h>
#include <linux/timerfd.h>
#include <linux/shm.h>

int main(void)
{
	// struct sigaction as the kernel takes it (x86_64, not glibc's)
	S(struct sigaction, "sigaction");
	F(struct sigaction, "sigaction", sa_handler);
	F(struct sigaction, "sigaction", sa_flags);
	F(struct sigaction, "sigaction", sa_restorer);
	F(struct sigaction, "sigaction", sa_mask);
	// the XSAVE area: the legacy region, then the header
	F(struct _fpstate_64, "fpstate", mxcsr);
	F(struct _fpstate_64, "fpstate", sw_reserved);
	S(struct _fpstate_64, "fpstate");
	F(struct _xstate, "xstate", xstate_hdr);
	F(struct _xstate, "xstate", xstate_hdr.xfeatures);
	F(struct _xstate, "xstate", xstate_hdr.reserved1);
	S(struct _header, "xstate_header");
	// terminals: struct termios2, the ioctls and termios bits of kernel/consts.ts
	S(struct termios2, "termios2");
	F(struct termios2, "termios2", c_iflag);
	F(struct termios2, "termios2", c_oflag);
	F(struct termios2, "termios2", c_cflag);
	F(struct termios2, "termios2", c_lflag);
	F(struct termios2, "termios2", c_line);
	F(struct termios2, "termios2", c_cc[0]);
	F(struct termios2, "termios2", c_ispeed);
	F(struct termios2, "termios2", c_ospeed);
	K(NCCS); K(N_TTY);
	K(TIOCSPGRP); K(TIOCGPGRP); K(TIOCGSID); K(TIOCSCTTY); K(TIOCNOTTY); K(TCGETS2); K(TCSETS2); K(TIOCGWINSZ); K(TIOCSWINSZ);
	K(TIOCGPTN); K(TIOCSPTLCK); K(TIOCGPTLCK); K(TIOCGPTPEER); K(TIOCPKT); K(TIOCGPKT); K(TIOCEXCL); K(TIOCNXCL); K(TIOCGEXCL);
	K(TIOCSTI); K(TIOCGETD); K(FIONREAD); K(TFD_IOC_SET_TICKS);
	K(IGNBRK); K(BRKINT); K(IGNPAR); K(PARMRK); K(INPCK); K(ISTRIP); K(INLCR); K(IGNCR); K(ICRNL); K(IUCLC); K(IXON); K(IXANY);
	K(IXOFF); K(IMAXBEL); K(IUTF8); K(OPOST);
	K(ISIG); K(ICANON); K(XCASE); K(ECHO); K(ECHOE); K(ECHOK); K(ECHONL); K(NOFLSH); K(TOSTOP); K(ECHOCTL); K(ECHOPRT); K(ECHOKE);
	K(FLUSHO); K(PENDIN); K(IEXTEN); K(EXTPROC);
	K(VINTR); K(VQUIT); K(VERASE); K(VKILL); K(VEOF); K(VTIME); K(VMIN); K(VSWTC); K(VSTART); K(VSTOP); K(VSUSP); K(VEOL);
	K(VREPRINT); K(VDISCARD); K(VWERASE); K(VLNEXT); K(VEOL2);
	// System V shared memory: shmctl's struct as the kernel has it, and its numbers
	S(struct shmid64_ds, "shmid64_ds");
	F(struct shmid64_ds, "shmid64_ds", shm_perm.key);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.uid);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.gid);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.cuid);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.cgid);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.mode);
	F(struct shmid64_ds, "shmid64_ds", shm_perm.seq);
	F(struct shmid64_ds, "shmid64_ds", shm_segsz);
	F(struct shmid64_ds, "shmid64_ds", shm_atime);
	F(struct shmid64_ds, "shmid64_ds", shm_dtime);
	F(struct shmid64_ds, "shmid64_ds", shm_ctime);
	F(struct shmid64_ds, "shmid64_ds", shm_cpid);
	F(struct shmid64_ds, "shmid64_ds", shm_lpid);
	F(struct shmid64_ds, "shmid64_ds", shm_nattch);
	K(IPC_PRIVATE); K(IPC_CREAT); K(IPC_EXCL); K(IPC_RMID); K(IPC_SET); K(IPC_STAT);
	K(SHM_LOCK); K(SHM_UNLOCK); K(SHM_RDONLY); K(SHM_RND); K(SHM_REMAP); K(SHM_EXEC);
	return 0;
}
#else
#include <signal.h>
#include <time.h>
#include <sys/time.h>
#include <sys/uio.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <sys/resource.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <linux/prctl.h>
#include <linux/capability.h>
#include <linux/ioctl.h>
#include <linux/userfaultfd.h>
#include <linux/kcmp.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/timerfd.h>
#include <poll.h>
#include <sys/un.h>
#include <sys/shm.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/unix_diag.h>
#include <linux/filter.h>
#include <linux/ptrace.h>

int main(void)
{
	S(struct clone_args, "clone_args");
	printf("C CLONE_ARGS_SIZE_VER2 %d\n", CLONE_ARGS_SIZE_VER2);
	F(struct clone_args, "clone_args", flags);
	F(struct clone_args, "clone_args", pidfd);
	F(struct clone_args, "clone_args", child_tid);
	F(struct clone_args, "clone_args", parent_tid);
	F(struct clone_args, "clone_args", exit_signal);
	F(struct clone_args, "clone_args", stack);
	F(struct clone_args, "clone_args", stack_size);
	F(struct clone_args, "clone_args", tls);
	F(struct clone_args, "clone_args", set_tid);
	F(struct clone_args, "clone_args", set_tid_size);
	F(struct clone_args, "clone_args", cgroup);

	S(struct prctl_mm_map, "prctl_mm_map");
	F(struct prctl_mm_map, "prctl_mm_map", start_code);
	F(struct prctl_mm_map, "prctl_mm_map", end_code);
	F(struct prctl_mm_map, "prctl_mm_map", start_data);
	F(struct prctl_mm_map, "prctl_mm_map", end_data);
	F(struct prctl_mm_map, "prctl_mm_map", start_brk);
	F(struct prctl_mm_map, "prctl_mm_map", brk);
	F(struct prctl_mm_map, "prctl_mm_map", start_stack);
	F(struct prctl_mm_map, "prctl_mm_map", arg_start);
	F(struct prctl_mm_map, "prctl_mm_map", arg_end);
	F(struct prctl_mm_map, "prctl_mm_map", env_start);
	F(struct prctl_mm_map, "prctl_mm_map", env_end);
	F(struct prctl_mm_map, "prctl_mm_map", auxv);
	F(struct prctl_mm_map, "prctl_mm_map", auxv_size);
	F(struct prctl_mm_map, "prctl_mm_map", exe_fd);

	S(struct __user_cap_header_struct, "cap_header");
	F(struct __user_cap_header_struct, "cap_header", version);
	F(struct __user_cap_header_struct, "cap_header", pid);
	printf("C _LINUX_CAPABILITY_VERSION_3 %d\n", _LINUX_CAPABILITY_VERSION_3);
	printf("C _LINUX_CAPABILITY_U32S_3 %d\n", _LINUX_CAPABILITY_U32S_3);
	S(struct __user_cap_data_struct, "cap_data");
	F(struct __user_cap_data_struct, "cap_data", effective);
	F(struct __user_cap_data_struct, "cap_data", permitted);
	F(struct __user_cap_data_struct, "cap_data", inheritable);

	S(struct flock, "flock");
	F(struct flock, "flock", l_type);
	F(struct flock, "flock", l_whence);
	F(struct flock, "flock", l_start);
	F(struct flock, "flock", l_len);
	F(struct flock, "flock", l_pid);
	S(struct f_owner_ex, "f_owner_ex");
	F(struct f_owner_ex, "f_owner_ex", type);
	F(struct f_owner_ex, "f_owner_ex", pid);
	S(struct itimerval, "itimerval");
	F(struct itimerval, "itimerval", it_interval.tv_sec);
	F(struct itimerval, "itimerval", it_interval.tv_usec);
	F(struct itimerval, "itimerval", it_value.tv_sec);
	F(struct itimerval, "itimerval", it_value.tv_usec);

	S(siginfo_t, "siginfo");
	F(siginfo_t, "siginfo", si_signo);
	F(siginfo_t, "siginfo", si_errno);
	F(siginfo_t, "siginfo", si_code);
	F(siginfo_t, "siginfo", si_pid);
	F(siginfo_t, "siginfo", si_uid);
	F(siginfo_t, "siginfo", si_status);
	F(siginfo_t, "siginfo", si_timerid);
	F(siginfo_t, "siginfo", si_overrun);
	F(siginfo_t, "siginfo", si_value);

	S(struct sigevent, "sigevent");
	F(struct sigevent, "sigevent", sigev_value);
	F(struct sigevent, "sigevent", sigev_signo);
	F(struct sigevent, "sigevent", sigev_notify);
	F(struct sigevent, "sigevent", _sigev_un._tid);
	S(struct itimerspec, "itimerspec");
	F(struct itimerspec, "itimerspec", it_interval.tv_sec);
	F(struct itimerspec, "itimerspec", it_interval.tv_nsec);
	F(struct itimerspec, "itimerspec", it_value.tv_sec);
	F(struct itimerspec, "itimerspec", it_value.tv_nsec);
	S(struct sock_fprog, "sock_fprog");
	F(struct sock_fprog, "sock_fprog", len);
	F(struct sock_fprog, "sock_fprog", filter);
	S(struct sock_filter, "sock_filter");
	F(struct sock_filter, "sock_filter", code);
	F(struct sock_filter, "sock_filter", jt);
	F(struct sock_filter, "sock_filter", jf);
	F(struct sock_filter, "sock_filter", k);
	S(struct seccomp_metadata, "seccomp_metadata");
	F(struct seccomp_metadata, "seccomp_metadata", filter_off);
	F(struct seccomp_metadata, "seccomp_metadata", flags);

	S(stack_t, "stack_t");
	F(stack_t, "stack_t", ss_sp);
	F(stack_t, "stack_t", ss_flags);
	F(stack_t, "stack_t", ss_size);

	S(struct file_handle, "file_handle");
	F(struct file_handle, "file_handle", handle_bytes);
	F(struct file_handle, "file_handle", handle_type);
	S(struct timespec, "timespec");
	F(struct timespec, "timespec", tv_sec);
	F(struct timespec, "timespec", tv_nsec);

	S(struct iovec, "iovec");
	F(struct iovec, "iovec", iov_base);
	F(struct iovec, "iovec", iov_len);
	S(struct msghdr, "msghdr");
	F(struct msghdr, "msghdr", msg_name);
	F(struct msghdr, "msghdr", msg_namelen);
	F(struct msghdr, "msghdr", msg_iov);
	F(struct msghdr, "msghdr", msg_iovlen);
	F(struct msghdr, "msghdr", msg_control);
	F(struct msghdr, "msghdr", msg_controllen);
	F(struct msghdr, "msghdr", msg_flags);
	S(struct cmsghdr, "cmsghdr");
	F(struct cmsghdr, "cmsghdr", cmsg_len);
	F(struct cmsghdr, "cmsghdr", cmsg_level);
	F(struct cmsghdr, "cmsghdr", cmsg_type);
	printf("C CMSG_LEN_1 %zu\n", (size_t)CMSG_LEN(sizeof(int)));
	printf("C CMSG_SPACE_3 %zu\n", (size_t)CMSG_SPACE(3 * sizeof(int)));

	S(struct sockaddr_un, "sockaddr_un");
	F(struct sockaddr_un, "sockaddr_un", sun_family);
	printf("C SUN_PATH_OFFSET %zu\n", offsetof(struct sockaddr_un, sun_path));
	printf("C SUN_PATH_MAX %zu\n", sizeof(((struct sockaddr_un *)0)->sun_path));
	S(struct ucred, "ucred");
	F(struct ucred, "ucred", pid);
	F(struct ucred, "ucred", uid);
	F(struct ucred, "ucred", gid);
	S(struct timeval, "timeval");
	F(struct timeval, "timeval", tv_sec);
	F(struct timeval, "timeval", tv_usec);
	S(struct nlmsghdr, "nlmsghdr");
	F(struct nlmsghdr, "nlmsghdr", nlmsg_len);
	F(struct nlmsghdr, "nlmsghdr", nlmsg_type);
	F(struct nlmsghdr, "nlmsghdr", nlmsg_flags);
	F(struct nlmsghdr, "nlmsghdr", nlmsg_seq);
	F(struct nlmsghdr, "nlmsghdr", nlmsg_pid);
	S(struct unix_diag_req, "unix_diag_req");
	F(struct unix_diag_req, "unix_diag_req", sdiag_family);
	F(struct unix_diag_req, "unix_diag_req", sdiag_protocol);
	F(struct unix_diag_req, "unix_diag_req", pad);
	F(struct unix_diag_req, "unix_diag_req", udiag_states);
	F(struct unix_diag_req, "unix_diag_req", udiag_ino);
	F(struct unix_diag_req, "unix_diag_req", udiag_show);
	F(struct unix_diag_req, "unix_diag_req", udiag_cookie[0]);
	F(struct unix_diag_req, "unix_diag_req", udiag_cookie[1]);
	S(struct unix_diag_msg, "unix_diag_msg");
	F(struct unix_diag_msg, "unix_diag_msg", udiag_family);
	F(struct unix_diag_msg, "unix_diag_msg", udiag_type);
	F(struct unix_diag_msg, "unix_diag_msg", udiag_state);
	F(struct unix_diag_msg, "unix_diag_msg", pad);
	F(struct unix_diag_msg, "unix_diag_msg", udiag_ino);
	F(struct unix_diag_msg, "unix_diag_msg", udiag_cookie[0]);
	F(struct unix_diag_msg, "unix_diag_msg", udiag_cookie[1]);
	S(struct rtattr, "rtattr");
	F(struct rtattr, "rtattr", rta_len);
	F(struct rtattr, "rtattr", rta_type);
	S(struct unix_diag_vfs, "unix_diag_vfs");
	F(struct unix_diag_vfs, "unix_diag_vfs", udiag_vfs_ino);
	F(struct unix_diag_vfs, "unix_diag_vfs", udiag_vfs_dev);
	S(struct unix_diag_rqlen, "unix_diag_rqlen");
	F(struct unix_diag_rqlen, "unix_diag_rqlen", udiag_rqueue);
	F(struct unix_diag_rqlen, "unix_diag_rqlen", udiag_wqueue);
	S(struct rlimit64, "rlimit64");
	F(struct rlimit64, "rlimit64", rlim_cur);
	F(struct rlimit64, "rlimit64", rlim_max);

	S(struct uffdio_api, "uffdio_api");
	F(struct uffdio_api, "uffdio_api", api);
	F(struct uffdio_api, "uffdio_api", features);
	F(struct uffdio_api, "uffdio_api", ioctls);
	S(struct uffdio_range, "uffdio_range");
	F(struct uffdio_range, "uffdio_range", start);
	F(struct uffdio_range, "uffdio_range", len);
	S(struct uffdio_register, "uffdio_register");
	F(struct uffdio_register, "uffdio_register", range.start);
	F(struct uffdio_register, "uffdio_register", range.len);
	F(struct uffdio_register, "uffdio_register", mode);
	F(struct uffdio_register, "uffdio_register", ioctls);
	S(struct uffdio_copy, "uffdio_copy");
	F(struct uffdio_copy, "uffdio_copy", dst);
	F(struct uffdio_copy, "uffdio_copy", src);
	F(struct uffdio_copy, "uffdio_copy", len);
	F(struct uffdio_copy, "uffdio_copy", mode);
	F(struct uffdio_copy, "uffdio_copy", copy);
	S(struct epoll_event, "epoll_event");
	F(struct epoll_event, "epoll_event", events);
	F(struct epoll_event, "epoll_event", data);
	S(struct winsize, "winsize");
	F(struct winsize, "winsize", ws_row);
	F(struct winsize, "winsize", ws_col);
	F(struct winsize, "winsize", ws_xpixel);
	F(struct winsize, "winsize", ws_ypixel);
	S(struct pollfd, "pollfd");
	F(struct pollfd, "pollfd", fd);
	F(struct pollfd, "pollfd", events);
	F(struct pollfd, "pollfd", revents);
	S(struct kcmp_epoll_slot, "kcmp_epoll_slot");
	F(struct kcmp_epoll_slot, "kcmp_epoll_slot", efd);
	F(struct kcmp_epoll_slot, "kcmp_epoll_slot", tfd);
	F(struct kcmp_epoll_slot, "kcmp_epoll_slot", toff);
	// the mode bits the kernel adds to a System V segment (not in the kernel's uapi headers)
	K(SHM_DEST); K(SHM_LOCKED); K(SHM_NORESERVE);
	K(POLLIN); K(POLLPRI); K(POLLOUT); K(POLLERR); K(POLLHUP); K(POLLNVAL);
	printf("C UFFD_API %llu\n", (unsigned long long)UFFD_API);
	printf("C UFFDIO_API %lu\n", (unsigned long)UFFDIO_API);
	printf("C UFFDIO_REGISTER %lu\n", (unsigned long)UFFDIO_REGISTER);
	printf("C UFFDIO_UNREGISTER %lu\n", (unsigned long)UFFDIO_UNREGISTER);
	printf("C UFFDIO_COPY %lu\n", (unsigned long)UFFDIO_COPY);
	printf("C UFFDIO_REGISTER_MODE_MISSING %llu\n", (unsigned long long)UFFDIO_REGISTER_MODE_MISSING);
	return 0;
}
#endif
