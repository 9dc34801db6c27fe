/* Instruction-count markers (see et_platform.h). Each touches its own volatile counter so
 * the compiler can neither drop them nor fold the two into one function. */
#include "et_platform.h"

static volatile unsigned et_mark_begins;
static volatile unsigned et_mark_ends;

__attribute__((noinline)) void et_mark_begin(void) { et_mark_begins = et_mark_begins + 1u; }
__attribute__((noinline)) void et_mark_end(void) { et_mark_ends = et_mark_ends + 1u; }
