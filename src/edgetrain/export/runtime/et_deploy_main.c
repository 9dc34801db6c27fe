/* The smallest program around a generated model: init, train on one sample, predict.
 * No stdio and no heap, so its ELF sizes are what the model costs on the device
 * (`make size TARGET=...`). On a real board, replace this with your firmware's main. */
#include <stdint.h>

#include "et_numerics.h"
#include "model.h"

static float et_sample[ET_INPUT_SIZE];
static float et_logits[ET_NUM_CLASSES];

int main(void)
{
    et_init();
    et_train_step(et_sample, 0);
    et_predict(et_sample, et_logits);
    return et_error;
}
