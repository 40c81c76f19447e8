/*
 * static_counter - counter.c built with -static: no dynamic loader, no
 * shared libraries in the address space, glibc's static TLS/rseq setup.
 * Same protocol and checks as counter.
 */
#include "counter.c"
