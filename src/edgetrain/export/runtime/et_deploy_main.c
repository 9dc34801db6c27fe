/* The smallest program around a generated model: init, train on one sample, predict.
 * No stdio, no heap, no semihosting (built with ET_SEMIHOSTING=0, linked without rdimon), so
 * its ELF's .data + .bss is what the model costs on the device (`make size TARGET=...`),
 * the figure the planner predicts (docs/planner.md, "runtime"). The sample is the caller's
 * (on a board: a sensor or DMA buffer of the firmware), so here it is a constant in flash;
 * the logits live on main's stack, like any caller's local. On a real board, replace this
 * with your firmware's main. */
#include <stdint.h>

#include "et_numerics.h"
#include "model.h"

static const float et_sample[ET_INPUT_SIZE];

int main(void)
{
    float logits[ET_NUM_CLASSES];
    et_init();
    et_train_step(et_sample, 0);
    et_predict(et_sample, logits);
    return et_error;
}
