/* edgetrain verification / benchmark program for a generated model (host or Cortex-M under
 * QEMU with semihosting files).
 *
 * Reads verify_in.bin: uint32 magic "ETV1", steps, batch, input size; then per step
 * float32[batch][input size] inputs and int32[batch] labels. Runs et_init() and one
 * et_train_batch() per step, each bracketed by the instruction-count markers.
 * Built with -DET_TRACE=1, every tensor the model traces is appended to verify_out.bin as a
 * record: uint16 id (index into model.h's trace names), uint16 step, uint32 bytes, data.
 * After the steps, et_predict's logits for the last step's first sample go to
 * predict_out.bin (float32[ET_NUM_CLASSES]).
 * Exit code: 0, or 10 + et_error when a numeric range check failed, 2/3 on file errors. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "et_numerics.h"
#include "et_platform.h"
#include "model.h"

#define ET_MAGIC 0x31565445u  /* "ETV1" little-endian */

#if ET_TRACE
static FILE *et_trace_file;
static uint16_t et_trace_step;

void et_trace(uint16_t id, const void *data, uint32_t bytes)
{
    if (!et_trace_file) return;     /* inference after training traces nothing */
    uint16_t head16[2] = {id, et_trace_step};
    fwrite(head16, 2, 2, et_trace_file);
    fwrite(&bytes, 4, 1, et_trace_file);
    fwrite(data, 1, bytes, et_trace_file);
}
#endif

static int read_exact(FILE *f, void *dst, size_t bytes)
{
    return fread(dst, 1, bytes, f) == bytes;
}

int main(void)
{
    FILE *f = fopen("verify_in.bin", "rb");
    uint32_t head[4];
    if (!f || !read_exact(f, head, sizeof head) || head[0] != ET_MAGIC || head[3] != ET_INPUT_SIZE)
        return 2;
    uint32_t steps = head[1], batch = head[2];
    float *x = malloc(sizeof(float) * ET_INPUT_SIZE * batch);
    int32_t *y = malloc(sizeof(int32_t) * batch);
    if (!x || !y) return 3;
#if ET_TRACE
    et_trace_file = fopen("verify_out.bin", "wb");
    if (!et_trace_file) return 2;
#endif
    et_init();
    for (uint32_t s = 0; s < steps; s++) {
        if (!read_exact(f, x, sizeof(float) * ET_INPUT_SIZE * batch) ||
            !read_exact(f, y, sizeof(int32_t) * batch))
            return 2;
#if ET_TRACE
        et_trace_step = (uint16_t)s;
#endif
        et_mark_begin();
        et_train_batch(x, y, (int32_t)batch);
        et_mark_end();
        if (et_error) break;
    }
#if ET_TRACE
    fclose(et_trace_file);
    et_trace_file = 0;
    if (!et_error) {            /* inference after training: the last step's first sample */
        float logits[ET_NUM_CLASSES];
        FILE *p = fopen("predict_out.bin", "wb");
        if (!p) return 2;
        et_predict(x, logits);
        fwrite(logits, sizeof logits[0], ET_NUM_CLASSES, p);
        fclose(p);
    }
#endif
    fclose(f);
    if (et_error) printf("edgetrain: numeric range error %d\n", et_error);
    return et_error ? 10 + et_error : 0;
}
