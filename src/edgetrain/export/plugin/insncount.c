/* edgetrain instruction-count plugin for qemu-system-arm (TCG plugin API version 1, QEMU >= 6).
 *
 * Counts every executed guest instruction (inline counter, exact) and, when given the
 * addresses of two marker functions, the instructions executed between a call of the
 * "begin" marker and the next call of the "end" marker, summed over all such regions:
 *
 *   qemu-system-arm ... -plugin libetinsn.so,begin=0xADDR,end=0xADDR -d plugin
 *   -> stderr: "et_insns total=N measured=M regions=K"
 *
 * The guest brackets the work it wants measured with et_mark_begin()/et_mark_end()
 * (noinline functions of the harness). The few instructions of the markers themselves are
 * part of the count (4 to 6 per region; negligible against a training step).
 * Self-contained: declares the plugin entry points it uses instead of including
 * qemu-plugin.h (Debian ships plugin support but no header). Built by edgetrain with the
 * host compiler: cc -shared -fPIC -O2 insncount.c -o libetinsn.so */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef uint64_t qemu_plugin_id_t;
struct qemu_plugin_tb;
struct qemu_plugin_insn;
enum qemu_plugin_op { QEMU_PLUGIN_INLINE_ADD_U64 };
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*tb_trans_cb_t)(qemu_plugin_id_t, struct qemu_plugin_tb *);
typedef void (*udata_cb_t)(qemu_plugin_id_t, void *);
typedef void (*vcpu_udata_cb_t)(unsigned int, void *);

extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t, tb_trans_cb_t);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *);
extern struct qemu_plugin_insn *qemu_plugin_tb_get_insn(const struct qemu_plugin_tb *, size_t);
extern uint64_t qemu_plugin_insn_vaddr(const struct qemu_plugin_insn *);
extern void qemu_plugin_register_vcpu_insn_exec_inline(struct qemu_plugin_insn *,
                                                       enum qemu_plugin_op, void *, uint64_t);
extern void qemu_plugin_register_vcpu_insn_exec_cb(struct qemu_plugin_insn *, vcpu_udata_cb_t,
                                                   enum qemu_plugin_cb_flags, void *);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t, udata_cb_t, void *);
extern void qemu_plugin_outs(const char *);

__attribute__((visibility("default"))) int qemu_plugin_version = 1;

/* One vCPU (Cortex-M): plain counters are enough. */
static uint64_t total, measured, regions, region_start;
static uint64_t begin_addr, end_addr;
static int in_region;
/* profile=1: executions per instruction address in the code region [0, 4 MiB) (Thumb:
 * 2-byte steps), printed at exit as "et_prof ADDR COUNT" lines */
#define ET_PROF_SLOTS (4u * 1024u * 1024u / 2u)
static uint64_t *prof;

static void on_begin(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    region_start = total;
    in_region = 1;
}

static void on_end(unsigned int vcpu, void *udata)
{
    (void)vcpu; (void)udata;
    if (in_region) {
        measured += total - region_start;
        regions++;
        in_region = 0;
    }
}

static void on_tb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
    (void)id;
    size_t n = qemu_plugin_tb_n_insns(tb);
    for (size_t i = 0; i < n; i++) {
        struct qemu_plugin_insn *insn = qemu_plugin_tb_get_insn(tb, i);
        uint64_t pc = qemu_plugin_insn_vaddr(insn);
        if (begin_addr && pc == begin_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_begin, QEMU_PLUGIN_CB_NO_REGS, NULL);
        if (end_addr && pc == end_addr)
            qemu_plugin_register_vcpu_insn_exec_cb(insn, on_end, QEMU_PLUGIN_CB_NO_REGS, NULL);
        qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64, &total, 1);
        if (prof && pc / 2 < ET_PROF_SLOTS)
            qemu_plugin_register_vcpu_insn_exec_inline(insn, QEMU_PLUGIN_INLINE_ADD_U64,
                                                       &prof[pc / 2], 1);
    }
}

static void on_exit_cb(qemu_plugin_id_t id, void *p)
{
    (void)id; (void)p;
    char buf[160];
    snprintf(buf, sizeof buf, "et_insns total=%llu measured=%llu regions=%llu\n",
             (unsigned long long)total, (unsigned long long)measured,
             (unsigned long long)regions);
    qemu_plugin_outs(buf);
    for (uint64_t i = 0; prof && i < ET_PROF_SLOTS; i++)
        if (prof[i]) {
            snprintf(buf, sizeof buf, "et_prof %llx %llu\n", (unsigned long long)(2 * i),
                     (unsigned long long)prof[i]);
            qemu_plugin_outs(buf);
        }
}

__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const void *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (!strncmp(argv[i], "begin=", 6)) begin_addr = strtoull(argv[i] + 6, NULL, 0);
        if (!strncmp(argv[i], "end=", 4)) end_addr = strtoull(argv[i] + 4, NULL, 0);
        if (!strcmp(argv[i], "profile=1")) prof = calloc(ET_PROF_SLOTS, sizeof *prof);
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_tb);
    qemu_plugin_register_atexit_cb(id, on_exit_cb, NULL);
    return 0;
}
