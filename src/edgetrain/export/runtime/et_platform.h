/* edgetrain platform hooks shared by the host and Cortex-M builds.
 * et_mark_begin()/et_mark_end() bracket the work whose instructions QEMU's edgetrain
 * plugin counts (they cost a few instructions and do nothing else). */
#ifndef ET_PLATFORM_H
#define ET_PLATFORM_H

void et_mark_begin(void);
void et_mark_end(void);

#endif
