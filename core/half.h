/* IEEE binary16 (fp16) and bfloat16 <-> fp32 conversion.
 * fp32 -> 16-bit rounds to nearest, ties to even; overflow gives Inf;
 * NaN stays NaN (quiet, sign and top payload bits kept); subnormals exact. */
#ifndef XF_CORE_HALF_H
#define XF_CORE_HALF_H

#include <stddef.h>
#include <stdint.h>

float xf_f16_to_f32(uint16_t h);
uint16_t xf_f32_to_f16(float f);
float xf_bf16_to_f32(uint16_t h);
uint16_t xf_f32_to_bf16(float f);

void xf_f16_to_f32_array(const uint16_t *src, float *dst, size_t n);
void xf_f32_to_f16_array(const float *src, uint16_t *dst, size_t n);
void xf_bf16_to_f32_array(const uint16_t *src, float *dst, size_t n);
void xf_f32_to_bf16_array(const float *src, uint16_t *dst, size_t n);

#endif
