/*
 * Which sanitizer this file is compiled with (scripts/build-runtime.ts: the asan and tsan
 * archives), for the code that must tell it about fiber stacks: OSP_ASAN and OSP_TSAN are 1 or
 * 0, and the interface header of the one in use is included. gcc defines __SANITIZE_ADDRESS__
 * and __SANITIZE_THREAD__; for ThreadSanitizer clang's feature test counts too.
 */
#ifndef OSP_SANITIZER_H
#define OSP_SANITIZER_H

#if defined(__SANITIZE_ADDRESS__)
#include <sanitizer/common_interface_defs.h>
#define OSP_ASAN 1
#else
#define OSP_ASAN 0
#endif

/* ThreadSanitizer (build-runtime.ts --tsan): every fiber switch is announced, so TSan keeps
 * one shadow context per fiber and orders what a fiber did before it parked before what it
 * does after it resumes, perhaps on another worker. */
#if defined(__SANITIZE_THREAD__)
#define OSP_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define OSP_TSAN 1
#endif
#endif
#ifndef OSP_TSAN
#define OSP_TSAN 0
#endif
#if OSP_TSAN
#include <sanitizer/tsan_interface.h>
#endif

#endif
