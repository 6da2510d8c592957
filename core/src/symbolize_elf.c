/* Native symbolisation: loaded objects (dl_iterate_phdr) -> mappings, ELF symbol tables -> names. */
#include "op_clock.h"
#include "op_symbolize.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/auxv.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/*
 * Model. An elf_image is what one file (or the vdso) says: path, build id, function symbols
 * by link-time address. A loaded_obj is one load of an image at one bias, with its executable
 * segments as op_mappings. Lookups go through a sorted index of mapping ranges.
 *
 * Unloaded objects (dlclose) are kept, marked stale: samples taken before the unload are
 * symbolised at the next profile close, after the object is gone. A stale object stays in the
 * index until a live object (or a more recently present stale one) overlaps its range; stale
 * objects are ordered by when they were last known to be loaded. Reloading the same file at the
 * same address revives the old entry, and an image is shared by all loads of the same file and
 * build id. At most MAX_INDEXED_STALE stale objects are kept; older ones are freed at a refresh
 * (their images, and so every name handed out, stay until op_symbolizer_free()).
 *
 * An object loaded and unloaded between two refreshes (a program that loops dlopen, call,
 * dlclose) is never seen by a scan. So native mode's dlclose wrapper (native/native_dl.c) notes the
 * loaded objects just before the real dlclose and, after it, hands every object that went away
 * to a process-wide list of retired objects with its unload time (op_symbolize_unload_begin/
 * _end below); each refresh merges the retirements it has not seen yet as stale objects.
 *
 * Files are read with pread() of the headers and the two tables needed (never mmap: a file
 * truncated under us would raise SIGBUS in the host process). Every offset and size read from
 * a file is bounds-checked; a malformed file yields a mapping without names. When the loaded
 * object carries a GNU build id and the file on disk has a different one (upgraded since it was
 * loaded), the file's symbols are not used.
 */

#define MAX_EXEC_SEGS 8                    /* executable PT_LOADs kept per object */
#define MAX_BUILD_ID 64                    /* bytes of build id kept (SHA-1 is 20) */
#define MAX_TABLE_BYTES (256u << 20)       /* larger symbol or string tables are skipped */
#define MAX_SECTIONS 65536u                /* larger section tables are treated as malformed */
#define MAX_INDEXED_STALE 1024             /* stale objects kept and indexed, most recent first */
#define MAX_RETIRED 64                     /* distinct objects in the dlclose retired list */
#define VDSO_NAME "[vdso]"

typedef struct sym_ent {
    uint64_t start;  /* link-time address (st_value) */
    uint32_t size;   /* 0 = unknown: extends to the next symbol */
    uint32_t name;   /* offset into elf_image.names */
} sym_ent;

typedef struct elf_image {
    char *path;
    char *build_id; /* lower-case hex or NULL */
    sym_ent *syms;  /* sorted by start, one per start */
    size_t nsyms;
    char *names;
    size_t bytes;   /* held by syms and names */
    int capped;     /* names dropped: the symbolizer's memory cap was reached */
    int loaded;     /* symbols read: done on the first lookup that lands in this object, so
                       objects no sample touches are never opened */
    char *open_path;                /* what to open (the main program: /proc/self/exe) */
    int is_vdso;
    uint64_t vdso_image, vdso_size; /* in-memory ELF image of the vdso */
    struct elf_image *next;
} elf_image;

typedef struct loaded_obj {
    elf_image *img;
    char *dl_name;  /* name as the loader reports it: with bias and build id, the identity */
    uint64_t bias;  /* dlpi_addr: runtime address = link-time address + bias */
    op_mapping maps[MAX_EXEC_SEGS];
    int nmaps;
    int live;
    int was_live;       /* live before the current scan (refresh only) */
    uint64_t last_ns;   /* stale: CLOCK_MONOTONIC time it was last known to be loaded */
    struct loaded_obj *next;
} loaded_obj;

typedef struct range {
    uint64_t start, limit;
    loaded_obj *obj;
    const op_mapping *map;
} range;

struct op_symbolizer {
    elf_image *images;
    loaded_obj *objs;
    range *index;
    size_t nindex;
    uint64_t last_scan_ns;         /* CLOCK_MONOTONIC time of the last scan */
    uint64_t retired_seen;         /* retired-list sequence merged so far */
    unsigned long long adds, subs; /* loader counters at the last complete scan */
    int scanned;
    size_t max_bytes;              /* cap on symbol tables (0 = none) */
    size_t bytes;                  /* held by all images' symbol tables */
};

/* ---- what dl_iterate_phdr reports, copied out so files are read without the loader lock -- */

typedef struct seg {
    uint64_t vaddr, memsz, offset;
} seg;

typedef struct seen_obj {
    char *name;
    uint64_t bias;
    seg segs[MAX_EXEC_SEGS];
    int nsegs;
    int is_vdso;
    uint64_t vdso_image, vdso_size; /* in-memory ELF image of the vdso */
    char build_id[2 * MAX_BUILD_ID + 1];
} seen_obj;

typedef struct scan {
    seen_obj *v;
    size_t n, cap;
    int first, unchanged, oom;
    int have_prev;
    unsigned long long prev_adds, prev_subs, adds, subs;
    uint64_t vdso_ehdr;
    uint64_t page;
} scan;

static uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) & ~(a - 1); }

static uint64_t page_size(void) {
    long pg = sysconf(_SC_PAGESIZE);
    return pg > 0 ? (uint64_t)pg : 4096;
}

static void hex_encode(const uint8_t *p, size_t n, char *out) {
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[p[i] >> 4];
        out[2 * i + 1] = digits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

/* Finds the GNU build id in a block of ELF notes; writes hex into out. Returns 1 if found. */
static int notes_build_id(const uint8_t *p, uint64_t len, uint64_t align, char *out) {
    align = align == 8 ? 8 : 4;
    uint64_t off = 0;
    while (len >= 12 && off <= len - 12) {
        uint32_t h[3]; /* namesz, descsz, type */
        memcpy(h, p + off, sizeof h);
        off += 12;
        uint64_t name_len = align_up(h[0], align), desc_len = align_up(h[1], align);
        if (name_len > len - off) break;
        uint64_t desc = off + name_len;
        if (h[1] > len - desc) break;
        if (h[2] == NT_GNU_BUILD_ID && h[0] == 4 && memcmp(p + off, "GNU", 4) == 0 && h[1] > 0 &&
            h[1] <= MAX_BUILD_ID) {
            hex_encode(p + desc, h[1], out);
            return 1;
        }
        if (desc_len > len - desc) break;
        off = desc + desc_len;
    }
    return 0;
}

static int collect_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    scan *sc = arg;
    if (sc->first) {
        sc->first = 0;
        if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
            sc->adds = info->dlpi_adds;
            sc->subs = info->dlpi_subs;
            if (sc->have_prev && sc->adds == sc->prev_adds && sc->subs == sc->prev_subs) {
                sc->unchanged = 1;
                return 1; /* nothing loaded or unloaded since the last scan */
            }
        }
    }
    seen_obj o;
    memset(&o, 0, sizeof o);
    o.bias = (uint64_t)info->dlpi_addr;
    for (int i = 0; i < info->dlpi_phnum; i++) {
        const ElfW(Phdr) *ph = &info->dlpi_phdr[i];
        if (ph->p_type == PT_LOAD) {
            uint64_t lo = o.bias + ph->p_vaddr;
            if (sc->vdso_ehdr && sc->vdso_ehdr >= lo && sc->vdso_ehdr - lo < ph->p_memsz) {
                o.is_vdso = 1;
                if (ph->p_offset == 0) {
                    /* The kernel maps the whole image, page-rounded; its section headers lie
                     * past p_filesz but inside those pages. */
                    o.vdso_image = lo;
                    o.vdso_size = align_up(ph->p_memsz, sc->page);
                }
            }
            if ((ph->p_flags & PF_X) && o.nsegs < MAX_EXEC_SEGS && ph->p_memsz > 0) {
                o.segs[o.nsegs].vaddr = ph->p_vaddr;
                o.segs[o.nsegs].memsz = ph->p_memsz;
                o.segs[o.nsegs].offset = ph->p_offset;
                o.nsegs++;
            }
        } else if (ph->p_type == PT_NOTE && !o.build_id[0]) {
            /* Notes live inside a loaded segment, readable while the loader lock is held. */
            notes_build_id((const uint8_t *)(uintptr_t)(o.bias + ph->p_vaddr), ph->p_memsz,
                           ph->p_align, o.build_id);
        }
    }
    if (o.nsegs == 0) return 0; /* no code: nothing a pc can point into */
    o.name = strdup(info->dlpi_name ? info->dlpi_name : "");
    if (!o.name) {
        sc->oom = 1;
        return 0;
    }
    if (sc->n == sc->cap) {
        size_t ncap = sc->cap ? sc->cap * 2 : 64;
        seen_obj *nv = realloc(sc->v, ncap * sizeof(*nv));
        if (!nv) {
            free(o.name);
            sc->oom = 1;
            return 0;
        }
        sc->v = nv;
        sc->cap = ncap;
    }
    sc->v[sc->n++] = o;
    return 0;
}

/* ---- reading an ELF image, from a file descriptor or from memory (the vdso) ------------- */

typedef struct src {
    int fd;             /* -1 when mem is used */
    const uint8_t *mem;
    uint64_t size;
} src;

static int src_read(const src *s, uint64_t off, void *dst, uint64_t len) {
    if (off > s->size || len > s->size - off) return -1;
    if (s->mem) {
        memcpy(dst, s->mem + off, len);
        return 0;
    }
    uint8_t *d = dst;
    while (len > 0) {
        ssize_t r = pread(s->fd, d, len, (off_t)off);
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return -1;
        d += r;
        off += (uint64_t)r;
        len -= (uint64_t)r;
    }
    return 0;
}

static void *src_dup(const src *s, uint64_t off, uint64_t len) {
    if (len == 0 || len > MAX_TABLE_BYTES) return NULL;
    void *p = malloc(len);
    if (p && src_read(s, off, p, len) != 0) {
        free(p);
        p = NULL;
    }
    return p;
}

typedef struct raw_sym {
    uint64_t start, size;
    const char *name;
    int rank; /* lower is preferred among symbols at the same address */
} raw_sym;

/* Among aliases, prefer a sized symbol, then global over weak over local, then the name with
 * fewer leading underscores (printf over _IO_printf), then a stable order. */
static int sym_rank(const Elf64_Sym *s, const char *name) {
    int bind = ELF64_ST_BIND(s->st_info);
    int r = s->st_size ? 0 : 1000;
    r += bind == STB_GLOBAL ? 0 : bind == STB_WEAK ? 100 : 200;
    int u = 0;
    while (name[u] == '_' && u < 9) u++;
    return r + u * 10;
}

static int raw_cmp(const void *a, const void *b) {
    const raw_sym *x = a, *y = b;
    if (x->start != y->start) return x->start < y->start ? -1 : 1;
    if (x->rank != y->rank) return x->rank < y->rank ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* Reads the function symbols of section `symi` (SHT_SYMTAB or SHT_DYNSYM) into img. Returns the
 * number kept, 0 when the table is unusable. */
static size_t read_symbols(elf_image *img, const src *s, const Elf64_Shdr *sh, uint32_t shnum,
                           uint32_t symi) {
    const Elf64_Shdr *st = &sh[symi];
    if (st->sh_link >= shnum || sh[st->sh_link].sh_type != SHT_STRTAB) return 0;
    if (st->sh_entsize != 0 && st->sh_entsize != sizeof(Elf64_Sym)) return 0;
    const Elf64_Shdr *strs = &sh[st->sh_link];
    uint64_t nsym = st->sh_size / sizeof(Elf64_Sym);
    if (nsym == 0 || strs->sh_size == 0) return 0;
    Elf64_Sym *syms = src_dup(s, st->sh_offset, nsym * sizeof(Elf64_Sym));
    char *str = src_dup(s, strs->sh_offset, strs->sh_size);
    raw_sym *raw = NULL;
    size_t nraw = 0, kept = 0;
    if (!syms || !str) goto out;
    raw = malloc(nsym * sizeof(*raw));
    if (!raw) goto out;
    uint64_t strsz = strs->sh_size;
    for (uint64_t i = 0; i < nsym; i++) {
        const Elf64_Sym *e = &syms[i];
        int type = ELF64_ST_TYPE(e->st_info);
        if (type != STT_FUNC && type != STT_GNU_IFUNC) continue;
        if (e->st_shndx == SHN_UNDEF || e->st_shndx >= SHN_LORESERVE || e->st_value == 0) continue;
        if (e->st_name == 0 || e->st_name >= strsz) continue;
        const char *nm = str + e->st_name;
        if (!memchr(nm, '\0', strsz - e->st_name)) continue; /* unterminated: malformed */
        raw[nraw].start = e->st_value;
        raw[nraw].size = e->st_size;
        raw[nraw].name = nm;
        raw[nraw].rank = sym_rank(e, nm);
        nraw++;
    }
    if (nraw == 0) goto out;
    qsort(raw, nraw, sizeof(*raw), raw_cmp);
    /* One symbol per address; its name is copied once into the image's pool. */
    size_t uniq = 0, bytes = 0;
    for (size_t i = 0; i < nraw; i++) {
        if (i > 0 && raw[i].start == raw[i - 1].start) continue;
        raw[uniq++] = raw[i];
        bytes += strlen(raw[i].name) + 1;
    }
    img->syms = malloc(uniq * sizeof(sym_ent));
    img->names = malloc(bytes);
    if (!img->syms || !img->names) {
        free(img->syms);
        free(img->names);
        img->syms = NULL;
        img->names = NULL;
        goto out;
    }
    size_t at = 0;
    for (size_t i = 0; i < uniq; i++) {
        size_t l = strlen(raw[i].name) + 1;
        memcpy(img->names + at, raw[i].name, l);
        img->syms[i].start = raw[i].start;
        img->syms[i].size = raw[i].size > UINT32_MAX ? UINT32_MAX : (uint32_t)raw[i].size;
        img->syms[i].name = (uint32_t)at;
        at += l;
    }
    img->nsyms = kept = uniq;
    img->bytes = uniq * sizeof(sym_ent) + bytes;
out:
    free(syms);
    free(str);
    free(raw);
    return kept;
}

/* Parses the ELF image in s: checks the build id against want (if any), then loads .symtab,
 * else .dynsym. Leaves img without symbols on any inconsistency. */
static void read_image(elf_image *img, const src *s, const char *want_build_id) {
    Elf64_Ehdr eh;
    if (src_read(s, 0, &eh, sizeof eh) != 0) return;
    if (memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 || eh.e_ident[EI_CLASS] != ELFCLASS64) return;
#if __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
    if (eh.e_ident[EI_DATA] != ELFDATA2LSB) return;
#else
    if (eh.e_ident[EI_DATA] != ELFDATA2MSB) return;
#endif
    if (eh.e_shoff == 0 || eh.e_shentsize != sizeof(Elf64_Shdr)) return;
    uint64_t shnum = eh.e_shnum;
    if (shnum == 0) { /* extended numbering: the count is in section 0 */
        Elf64_Shdr s0;
        if (src_read(s, eh.e_shoff, &s0, sizeof s0) != 0) return;
        shnum = s0.sh_size;
    }
    if (shnum == 0 || shnum > MAX_SECTIONS) return;
    Elf64_Shdr *sh = src_dup(s, eh.e_shoff, shnum * sizeof(Elf64_Shdr));
    if (!sh) return;
    if (want_build_id && want_build_id[0]) {
        char have[2 * MAX_BUILD_ID + 1] = "";
        for (uint64_t i = 0; i < shnum && !have[0]; i++) {
            if (sh[i].sh_type != SHT_NOTE || sh[i].sh_size > (1u << 20)) continue;
            uint8_t *notes = src_dup(s, sh[i].sh_offset, sh[i].sh_size);
            if (notes) notes_build_id(notes, sh[i].sh_size, sh[i].sh_addralign, have);
            free(notes);
        }
        if (strcmp(have, want_build_id) != 0) goto out; /* not the file that was loaded */
    }
    for (int pass = 0; pass < 2; pass++) {
        uint32_t want = pass == 0 ? SHT_SYMTAB : SHT_DYNSYM;
        for (uint32_t i = 0; i < shnum; i++)
            if (sh[i].sh_type == want && read_symbols(img, s, sh, (uint32_t)shnum, i) > 0) goto out;
    }
out:
    free(sh);
}

/* ---- images and objects ------------------------------------------------------------------- */

static int same_str(const char *a, const char *b) {
    if (!a || !b) return !a && !b;
    return strcmp(a, b) == 0;
}

/* Resolves the file that backs a loaded object; sets *open_path to what should be opened. */
static char *object_path(const seen_obj *o, const char **open_path) {
    if (o->is_vdso) {
        *open_path = NULL;
        return strdup(VDSO_NAME);
    }
    char buf[PATH_MAX];
    if (o->name[0] == '\0') {
        /* The main program: open it through /proc so a binary replaced or deleted on disk since
         * exec still yields the running one. */
        *open_path = "/proc/self/exe";
        if (realpath("/proc/self/exe", buf)) return strdup(buf);
        ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
        if (n > 0) {
            buf[n] = '\0';
            return strdup(buf);
        }
        return strdup("/proc/self/exe");
    }
    char *p = realpath(o->name, buf) ? strdup(buf) : strdup(o->name);
    *open_path = p;
    return p;
}

/* Reads im's symbols now (first lookup in it), under the memory cap. */
static void load_image(op_symbolizer *s, elf_image *im) {
    im->loaded = 1;
    if (im->is_vdso) {
        if (im->vdso_image && im->vdso_size) {
            src m = {-1, (const uint8_t *)(uintptr_t)im->vdso_image, im->vdso_size};
            read_image(im, &m, NULL);
        }
    } else if (im->open_path) {
        /* O_NONBLOCK: a name that is now a FIFO must not hang the exporter. */
        int fd = open(im->open_path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
        struct stat st;
        if (fd >= 0 && fstat(fd, &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
            src f = {fd, NULL, (uint64_t)st.st_size};
            read_image(im, &f, im->build_id);
        }
        if (fd >= 0) close(fd);
    }
    if (s->max_bytes && s->bytes + im->bytes > s->max_bytes) {
        /* Over the cap: keep the mapping (addresses, build id) but not the names. */
        free(im->syms);
        free(im->names);
        im->syms = NULL;
        im->names = NULL;
        im->nsyms = 0;
        im->bytes = 0;
        im->capped = 1;
    }
    s->bytes += im->bytes;
}

static elf_image *image_for(op_symbolizer *s, const seen_obj *o) {
    const char *open_path = NULL;
    char *path = object_path(o, &open_path);
    if (!path) return NULL;
    const char *bid = o->build_id[0] ? o->build_id : NULL;
    for (elf_image *im = s->images; im; im = im->next) {
        if (strcmp(im->path, path) == 0 && same_str(im->build_id, bid)) {
            free(path);
            return im;
        }
    }
    elf_image *im = calloc(1, sizeof *im);
    if (!im || (bid && !(im->build_id = strdup(bid))) ||
        (open_path && !(im->open_path = strdup(open_path)))) {
        if (im) free(im->build_id);
        free(im);
        free(path);
        return NULL;
    }
    im->path = path;
    im->is_vdso = o->is_vdso;
    im->vdso_image = o->vdso_image;
    im->vdso_size = o->vdso_size;
    im->next = s->images;
    s->images = im;
    return im;
}

static loaded_obj *find_obj(op_symbolizer *s, const seen_obj *o) {
    const char *bid = o->build_id[0] ? o->build_id : NULL;
    for (loaded_obj *lo = s->objs; lo; lo = lo->next)
        if (lo->bias == o->bias && strcmp(lo->dl_name, o->name) == 0 &&
            same_str(lo->img->build_id, bid))
            return lo;
    return NULL;
}

static loaded_obj *new_obj(op_symbolizer *s, const seen_obj *o) {
    elf_image *im = image_for(s, o);
    if (!im) return NULL;
    loaded_obj *lo = calloc(1, sizeof *lo);
    if (!lo || !(lo->dl_name = strdup(o->name))) {
        free(lo);
        return NULL;
    }
    lo->img = im;
    lo->bias = o->bias;
    uint64_t page = page_size();
    /* Page-aligned, as /proc/self/maps shows them, so backends that read maps agree;
     * start - offset is unchanged by the alignment. */
    for (int i = 0; i < o->nsegs; i++) {
        op_mapping *m = &lo->maps[lo->nmaps];
        uint64_t start = o->bias + o->segs[i].vaddr, slack = start & (page - 1);
        if (slack > o->segs[i].offset) continue; /* inconsistent header: skip the segment */
        m->start = start - slack;
        m->limit = align_up(start + o->segs[i].memsz, page);
        m->offset = o->segs[i].offset - slack;
        m->filename = im->path;
        m->build_id = im->build_id;
        lo->nmaps++;
    }
    lo->next = s->objs;
    s->objs = lo;
    return lo;
}

/* ---- objects retired by dlclose, shared by every symbolizer in the process --------------- */

/* A bounded table: an object retired again (same name, bias and build id: a loop of dlopen and
 * dlclose) reuses its entry; a new one takes a free entry or the least recently retired. Written
 * by dlclose callers, read by refreshes, under retired_lock (never in signal context). */
typedef struct retired_ent {
    seen_obj o;         /* o.name malloc'd */
    uint64_t unload_ns; /* CLOCK_MONOTONIC */
    uint64_t seq;       /* retirement number, 0 = empty entry */
} retired_ent;

static pthread_mutex_t retired_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t retired_once = PTHREAD_ONCE_INIT;
static retired_ent retired_tab[MAX_RETIRED];
static uint64_t retired_seq; /* last number handed out; read without the lock by refreshes */

/* fork() while another thread holds the lock must not leave the child's copy locked. */
static void retired_prepare(void) { pthread_mutex_lock(&retired_lock); }
static void retired_release(void) { pthread_mutex_unlock(&retired_lock); }
static void retired_init(void) { pthread_atfork(retired_prepare, retired_release, retired_release); }

static int same_seen(const seen_obj *a, const seen_obj *b) {
    return a->bias == b->bias && strcmp(a->name, b->name) == 0 &&
           strcmp(a->build_id, b->build_id) == 0;
}

/* Takes ownership of o->name. */
static void retire(seen_obj *o, uint64_t unload_ns) {
    pthread_mutex_lock(&retired_lock);
    retired_ent *slot = NULL;
    for (int i = 0; i < MAX_RETIRED && !slot; i++)
        if (retired_tab[i].seq && same_seen(&retired_tab[i].o, o)) slot = &retired_tab[i];
    if (slot) {
        free(o->name);
    } else {
        slot = &retired_tab[0];
        for (int i = 1; i < MAX_RETIRED && slot->seq; i++)
            if (retired_tab[i].seq < slot->seq) slot = &retired_tab[i];
        if (slot->seq) free(slot->o.name);
        slot->o = *o;
    }
    slot->unload_ns = unload_ns;
    slot->seq = retired_seq + 1;
    __atomic_store_n(&retired_seq, slot->seq, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&retired_lock);
    o->name = NULL;
}

/* Adds the retirements s has not merged yet as stale objects. Returns 1 if any was added. */
static int merge_retired(op_symbolizer *s) {
    if (__atomic_load_n(&retired_seq, __ATOMIC_ACQUIRE) == s->retired_seen) return 0;
    retired_ent got[MAX_RETIRED];
    int n = 0;
    pthread_mutex_lock(&retired_lock);
    for (int i = 0; i < MAX_RETIRED; i++) {
        const retired_ent *e = &retired_tab[i];
        if (e->seq <= s->retired_seen) continue;
        got[n] = *e;
        if ((got[n].o.name = strdup(e->o.name))) n++; /* out of memory: that one is lost */
    }
    uint64_t seen = retired_seq;
    pthread_mutex_unlock(&retired_lock);
    int added = 0;
    for (int i = 0; i < n; i++) {
        loaded_obj *lo = find_obj(s, &got[i].o);
        if (!lo) lo = new_obj(s, &got[i].o);
        if (lo && !lo->live && lo->last_ns < got[i].unload_ns) {
            lo->last_ns = got[i].unload_ns;
            added = 1;
        }
        free(got[i].o.name);
    }
    s->retired_seen = seen;
    return added;
}

struct op_unload_note {
    scan before;
};

op_unload_note *op_symbolize_unload_begin(void) {
    pthread_once(&retired_once, retired_init);
    op_unload_note *n = calloc(1, sizeof *n);
    if (!n) return NULL;
    n->before.first = 1;
    n->before.vdso_ehdr = (uint64_t)getauxval(AT_SYSINFO_EHDR);
    n->before.page = page_size();
    dl_iterate_phdr(collect_cb, &n->before);
    return n;
}

typedef struct after_scan {
    const scan *before;
    uint8_t *present; /* per object noted before: still loaded */
    int first, none_gone;
} after_scan;

static int present_cb(struct dl_phdr_info *info, size_t size, void *arg) {
    after_scan *a = arg;
    if (a->first) {
        a->first = 0;
        if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs) &&
            info->dlpi_subs == a->before->subs) {
            a->none_gone = 1; /* nothing unloaded since the note */
            return 1;
        }
    }
    const char *name = info->dlpi_name ? info->dlpi_name : "";
    for (size_t i = 0; i < a->before->n; i++) {
        const seen_obj *o = &a->before->v[i];
        if (!a->present[i] && o->bias == (uint64_t)info->dlpi_addr && strcmp(o->name, name) == 0) {
            a->present[i] = 1;
            break;
        }
    }
    return 0;
}

void op_symbolize_unload_end(op_unload_note *n) {
    if (!n) return;
    scan *b = &n->before;
    uint8_t *present = b->n ? calloc(b->n, 1) : NULL;
    if (present) {
        after_scan a = {b, present, 1, 0};
        dl_iterate_phdr(present_cb, &a);
        if (!a.none_gone) {
            uint64_t now = (uint64_t)op_mono_ns();
            for (size_t i = 0; i < b->n; i++)
                if (!present[i] && !b->v[i].is_vdso) retire(&b->v[i], now);
        }
    }
    for (size_t i = 0; i < b->n; i++) free(b->v[i].name);
    free(present);
    free(b->v);
    free(n);
}

static int range_cmp(const void *a, const void *b) {
    const range *x = a, *y = b;
    return x->start < y->start ? -1 : x->start > y->start;
}

static int obj_pref_cmp(const void *a, const void *b) {
    const loaded_obj *x = *(loaded_obj *const *)a, *y = *(loaded_obj *const *)b;
    if (x->live != y->live) return x->live ? -1 : 1;
    if (x->last_ns != y->last_ns) return x->last_ns > y->last_ns ? -1 : 1;
    return 0;
}

static void free_obj(loaded_obj *lo) {
    free(lo->dl_name);
    free(lo);
}

/* Rebuilds the lookup index: live objects first, then stale ones (newest first) where they do
 * not overlap anything already indexed. Stale objects past MAX_INDEXED_STALE are freed. */
static void rebuild_index(op_symbolizer *s) {
    size_t nobj = 0, nmap = 0;
    for (loaded_obj *lo = s->objs; lo; lo = lo->next) {
        nobj++;
        nmap += (size_t)lo->nmaps;
    }
    loaded_obj **order = malloc((nobj ? nobj : 1) * sizeof(*order));
    range *idx = malloc((nmap ? nmap : 1) * sizeof(*idx));
    if (!order || !idx) {
        free(order);
        free(idx);
        return; /* keep the previous index */
    }
    size_t k = 0;
    for (loaded_obj *lo = s->objs; lo; lo = lo->next) order[k++] = lo;
    qsort(order, nobj, sizeof(*order), obj_pref_cmp);
    size_t n = 0, stale = 0, kept = nobj;
    for (size_t i = 0; i < nobj; i++) {
        loaded_obj *lo = order[i];
        if (!lo->live) {
            if (stale >= MAX_INDEXED_STALE) {
                kept = i;
                break;
            }
            stale++;
        }
        for (int j = 0; j < lo->nmaps; j++) {
            const op_mapping *m = &lo->maps[j];
            int clash = 0;
            /* Live objects never overlap each other; stale ones yield to everything earlier. */
            if (!lo->live)
                for (size_t q = 0; q < n && !clash; q++)
                    clash = m->start < idx[q].limit && idx[q].start < m->limit;
            if (!clash) idx[n++] = (range){m->start, m->limit, lo, m};
        }
    }
    qsort(idx, n, sizeof(*idx), range_cmp);
    /* The new index references only order[0, kept): the rest can go. */
    for (size_t i = kept; i < nobj; i++) free_obj(order[i]);
    for (size_t i = 0; i + 1 < kept; i++) order[i]->next = order[i + 1];
    if (kept) order[kept - 1]->next = NULL;
    s->objs = kept ? order[0] : NULL;
    free(order);
    free(s->index);
    s->index = idx;
    s->nindex = n;
}

op_symbolizer *op_symbolizer_new(size_t max_bytes) {
    op_symbolizer *s = calloc(1, sizeof(op_symbolizer));
    if (s) s->max_bytes = max_bytes;
    return s;
}

size_t op_symbolizer_bytes(const op_symbolizer *s) {
    return s ? s->bytes : 0;
}

void op_symbolizer_free(op_symbolizer *s) {
    if (!s) return;
    for (loaded_obj *lo = s->objs, *nx; lo; lo = nx) {
        nx = lo->next;
        free_obj(lo);
    }
    for (elf_image *im = s->images, *nx; im; im = nx) {
        nx = im->next;
        free(im->path);
        free(im->open_path);
        free(im->build_id);
        free(im->syms);
        free(im->names);
        free(im);
    }
    free(s->index);
    free(s);
}

void op_symbolizer_refresh(op_symbolizer *s) {
    if (!s) return;
    scan sc;
    memset(&sc, 0, sizeof sc);
    sc.first = 1;
    sc.have_prev = s->scanned;
    sc.prev_adds = s->adds;
    sc.prev_subs = s->subs;
    sc.vdso_ehdr = (uint64_t)getauxval(AT_SYSINFO_EHDR);
    sc.page = page_size();
    dl_iterate_phdr(collect_cb, &sc);
    uint64_t now = (uint64_t)op_mono_ns(), prev_scan = s->last_scan_ns;
    s->last_scan_ns = now;
    int changed = 0;
    if (!sc.unchanged) {
        changed = 1;
        for (loaded_obj *lo = s->objs; lo; lo = lo->next) lo->was_live = lo->live, lo->live = 0;
        for (size_t i = 0; i < sc.n; i++) {
            loaded_obj *lo = find_obj(s, &sc.v[i]);
            if (!lo) lo = new_obj(s, &sc.v[i]);
            if (lo) lo->live = 1;
            free(sc.v[i].name);
        }
        free(sc.v);
        /* Gone since the previous scan: last known loaded then (a retirement below may know
         * better). */
        for (loaded_obj *lo = s->objs; lo; lo = lo->next)
            if (lo->was_live && !lo->live && lo->last_ns < prev_scan) lo->last_ns = prev_scan;
        /* An incomplete scan must not let the next one be skipped as "unchanged". */
        s->scanned = !sc.oom;
        s->adds = sc.adds;
        s->subs = sc.subs;
    }
    if (merge_retired(s)) changed = 1;
    if (changed) rebuild_index(s);
}

static const sym_ent *find_symbol(const elf_image *im, uint64_t addr) {
    size_t lo = 0, hi = im->nsyms; /* first symbol with start > addr */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (im->syms[mid].start <= addr) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0) return NULL;
    const sym_ent *e = &im->syms[lo - 1];
    if (e->size == 0) return e; /* extends to the next symbol, which starts after addr */
    if (addr - e->start < e->size) return e;
    /* addr may sit in an enclosing function that starts a little earlier (nested local
     * symbols, cold parts); look back a few entries. */
    for (size_t i = 2; i <= 4 && i <= lo; i++) {
        e = &im->syms[lo - i];
        if (e->size && addr - e->start < e->size) return e;
    }
    return NULL;
}

int op_symbolizer_lookup(op_symbolizer *s, uint64_t pc, op_native_sym *out) {
    if (!out) return -1;
    out->name = NULL;
    out->sym_start = 0;
    out->map = NULL;
    out->capped = 0;
    if (!s || s->nindex == 0) return -1;
    size_t lo = 0, hi = s->nindex; /* first range with start > pc */
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->index[mid].start <= pc) lo = mid + 1;
        else hi = mid;
    }
    if (lo == 0 || pc >= s->index[lo - 1].limit) return -1;
    const range *r = &s->index[lo - 1];
    out->map = r->map;
    elf_image *im = r->obj->img;
    if (!im->loaded) load_image(s, im);
    out->capped = im->capped;
    if (im->nsyms && pc >= r->obj->bias) {
        const sym_ent *e = find_symbol(im, pc - r->obj->bias);
        if (e) {
            out->name = im->names + e->name;
            out->sym_start = e->start + r->obj->bias;
        }
    }
    return 0;
}
