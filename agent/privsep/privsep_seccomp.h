/* The privileged helper's system-call allow list (seccomp-bpf), installed once the helper has
 * set itself up: what it needs to serve privsep_msg.h's ops and nothing else. */
#ifndef AGENT_PRIVSEP_SECCOMP_H
#define AGENT_PRIVSEP_SECCOMP_H

/* Sets PR_SET_NO_NEW_PRIVS and installs the filter for this process (and its threads and
 * children, for good): any other system call fails with EPERM, so a call missing from the list
 * is an error a caller sees, never a dead helper that cannot restore. -errno on failure;
 * -EOPNOTSUPP on an architecture the list does not know. */
int privsep_seccomp_install(void);

/* Whether the list allows system call nr (for tests). */
int privsep_seccomp_allows(long nr);

#endif
