/* peer-export.h: symbol visibility for libpeer's public API.
 *
 * The library is built with -fvisibility=hidden; only declarations marked
 * PEER_EXPORT are part of the ABI.
 */
#pragma once

#if defined(LIBPEER_COMPILATION)
# define PEER_EXPORT __attribute__((visibility ("default"))) extern
#else
# define PEER_EXPORT extern
#endif
