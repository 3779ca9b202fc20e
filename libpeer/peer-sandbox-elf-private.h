/* peer-sandbox-elf-private.h: where a helper's dynamic linker will look. */
#pragma once

#include <glib.h>

G_BEGIN_DECLS

/* Adds the directories of @program's DT_RUNPATH (or DT_RPATH), $ORIGIN
 * expanded, to @dirs (char*). A file that is not an ELF executable of
 * this machine's class adds nothing. */
void peer_sandbox_elf_add_runpath (const char *program,
                                   GPtrArray  *dirs);

G_END_DECLS
