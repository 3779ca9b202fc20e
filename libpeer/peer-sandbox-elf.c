/* peer-sandbox-elf.c: the library directories a helper binary names.
 *
 * A helper built but not installed (the tests', an application's during
 * development) finds its libraries through its RUNPATH, often relative to
 * itself ($ORIGIN/../lib). The sandbox shows only what it is told to, so
 * it reads the RUNPATH the way the dynamic linker will: the dynamic
 * section of the file, through the program headers that map it. The
 * file is the application's own choice of program, but it is read
 * defensively all the same: every offset is checked against the size.
 */
#include "config.h"

#include <elf.h>
#include <link.h>
#include <string.h>

#include "peer-sandbox-elf-private.h"

/* The file offset of virtual address @addr, or 0. */
static gsize
offset_of (const guint8 *data,
           gsize         size,
           const ElfW(Ehdr) *ehdr,
           ElfW(Addr)    addr)
{
  for (guint i = 0; i < ehdr->e_phnum; i++)
    {
      ElfW(Phdr) ph;

      memcpy (&ph, data + ehdr->e_phoff + (gsize) i * ehdr->e_phentsize, sizeof ph);
      if (ph.p_type == PT_LOAD && addr >= ph.p_vaddr && addr - ph.p_vaddr < ph.p_filesz &&
          ph.p_offset <= size && addr - ph.p_vaddr < size - ph.p_offset)
        return (gsize) (addr - ph.p_vaddr + ph.p_offset);
    }
  return 0;
}

static void
add_paths (const char *runpath,
           const char *program,
           GPtrArray  *dirs)
{
  g_autofree char *origin = g_path_get_dirname (program);
  g_auto(GStrv) parts = g_strsplit (runpath, ":", -1);

  for (guint i = 0; parts[i] != NULL; i++)
    {
      g_autoptr(GString) dir = g_string_new (parts[i]);

      g_string_replace (dir, "${ORIGIN}", origin, 0);
      g_string_replace (dir, "$ORIGIN", origin, 0);
      if (g_path_is_absolute (dir->str))
        g_ptr_array_add (dirs, g_string_free (g_steal_pointer (&dir), FALSE));
    }
}

void
peer_sandbox_elf_add_runpath (const char *program,
                              GPtrArray  *dirs)
{
  g_autoptr(GMappedFile) file = g_mapped_file_new (program, FALSE, NULL);
  const guint8 *data;
  ElfW(Ehdr) header;
  const ElfW(Ehdr) *ehdr = &header;
  gsize size, strtab = 0, dynamic = 0, dynamic_size = 0;
  ElfW(Addr) strtab_addr = 0;
  ElfW(Xword) runpath = 0, rpath = 0;
  gboolean have_runpath = FALSE, have_rpath = FALSE;

  if (file == NULL)
    return;
  data = (const guint8 *) g_mapped_file_get_contents (file);
  size = g_mapped_file_get_length (file);
  if (size < sizeof header)
    return;
  /* Copied out, here and below: nothing says the file is aligned. */
  memcpy (&header, data, sizeof header);
  if (memcmp (ehdr->e_ident, ELFMAG, SELFMAG) != 0 ||
      ehdr->e_ident[EI_CLASS] != (sizeof (void *) == 8 ? ELFCLASS64 : ELFCLASS32) ||
      ehdr->e_phentsize != sizeof (ElfW(Phdr)) || ehdr->e_phoff > size ||
      (gsize) ehdr->e_phnum * ehdr->e_phentsize > size - ehdr->e_phoff)
    return;

  for (guint i = 0; i < ehdr->e_phnum; i++)
    {
      ElfW(Phdr) ph;

      memcpy (&ph, data + ehdr->e_phoff + (gsize) i * ehdr->e_phentsize, sizeof ph);
      if (ph.p_type == PT_DYNAMIC && ph.p_offset <= size && ph.p_filesz <= size - ph.p_offset)
        {
          dynamic = (gsize) ph.p_offset;
          dynamic_size = (gsize) ph.p_filesz;
        }
    }
  for (gsize at = dynamic; dynamic_size > 0 && at + sizeof (ElfW(Dyn)) <= dynamic + dynamic_size;
       at += sizeof (ElfW(Dyn)))
    {
      ElfW(Dyn) dyn;

      memcpy (&dyn, data + at, sizeof dyn);
      if (dyn.d_tag == DT_NULL)
        break;
      if (dyn.d_tag == DT_STRTAB)
        strtab_addr = dyn.d_un.d_ptr;
      else if (dyn.d_tag == DT_RUNPATH)
        {
          runpath = dyn.d_un.d_val;
          have_runpath = TRUE;
        }
      else if (dyn.d_tag == DT_RPATH)
        {
          rpath = dyn.d_un.d_val;
          have_rpath = TRUE;
        }
    }
  if ((!have_runpath && !have_rpath) || strtab_addr == 0)
    return;
  strtab = offset_of (data, size, ehdr, strtab_addr);
  if (strtab == 0)
    return;
  for (int which = 0; which < 2; which++)
    {
      ElfW(Xword) at = which == 0 ? runpath : rpath;

      if (!(which == 0 ? have_runpath : have_rpath) || at >= size - strtab)
        continue;
      if (memchr (data + strtab + at, '\0', size - strtab - at) == NULL)
        continue;
      add_paths ((const char *) data + strtab + at, program, dirs);
    }
}
