/* Test harness for the runtime's integer kernels: reads kern_in.bin (one layer: geometry,
 * zero points, x, w, e, sel), runs forward, backward error and weight gradient, writes
 * kern_out.bin = acc int32[c_out*ho*wo], dx int32[c_in*h*w], dw int32[w size].
 * Header int32[16]: kind (0 linear, 1 conv), c_in, h, w, c_out, ho, wo, kh, kw, sh, sw, ph,
 * pw, groups, use_sel, reps; then int32 zx, zw, ze. reps > 1 repeats the kernels (timing). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "et_kernels.h"
#include "et_platform.h"

static void *read_n(FILE *f, size_t bytes)
{
    void *p = calloc(bytes ? bytes : 1, 1);
    if (!p || fread(p, 1, bytes, f) != bytes) exit(3);
    return p;
}

int main(void)
{
    FILE *f = fopen("kern_in.bin", "rb");
    if (!f) return 2;
    int32_t *hd = read_n(f, 16 * 4), *z = read_n(f, 3 * 4);
    et_conv_geo g = {hd[1], hd[2], hd[3], hd[4], hd[5], hd[6], hd[7], hd[8], hd[9], hd[10],
                     hd[11], hd[12], hd[13]};
    size_t nx = (size_t)g.c_in * g.h * g.w, ny = (size_t)g.c_out * g.ho * g.wo;
    size_t nw = (size_t)g.c_out * (g.c_in / g.groups) * g.kh * g.kw;
    int8_t *x = read_n(f, nx), *w = read_n(f, nw), *e = read_n(f, ny);
    uint8_t *sel = read_n(f, (size_t)g.c_out);
    fclose(f);
    int32_t *acc = calloc(ny, 4), *dx = calloc(nx, 4), *dw = calloc(nw, 4);
    int16_t *ec = calloc(ny, 2);
    size_t ncol = nw + nx + ny + 16;   /* generous: >= max(K, O/g*kh*kw, ho*wo) */
    et_conv_scratch sc = {calloc(ncol, 2), calloc(nw + 1, 1), calloc((size_t)g.c_out + 1, 4)};
    for (size_t i = 0; i < ny; i++) ec[i] = (int16_t)(e[i] - z[2]);
    const uint8_t *s = hd[14] ? sel : NULL;
    for (int32_t r = 0; r < (hd[15] > 0 ? hd[15] : 1); r++) {
        for (size_t i = 0; i < nw; i++) dw[i] = 0;
        et_mark_begin();
        if (hd[0] == 0) {
            et_linear_fwd(x, z[0], w, z[1], g.c_in, g.c_out, acc);
            et_linear_bwd_in(ec, s, w, z[1], g.c_in, g.c_out, dx);
            et_linear_bwd_w(ec, s, x, z[0], g.c_in, g.c_out, dw);
        } else {
            et_conv_fwd(&g, x, z[0], w, z[1], acc, &sc);
            et_conv_bwd_in(&g, ec, s, w, z[1], dx, &sc);
            et_conv_bwd_w(&g, ec, s, x, z[0], dw, &sc);
        }
        et_mark_end();
    }
    FILE *o = fopen("kern_out.bin", "wb");
    if (!o) return 2;
    fwrite(acc, 4, ny, o);
    fwrite(dx, 4, nx, o);
    fwrite(dw, 4, nw, o);
    fclose(o);
    return 0;
}
