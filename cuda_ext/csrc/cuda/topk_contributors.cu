// Per-pixel top-k contributors on CUDA: one thread per pixel, one block per tile, walking the tile's
// depth-sorted list (gsplat's isect layout) with the same alpha and termination rules as the
// rasteriser. Forward only. Reference: semdyn/ops/_torch_impl.py::_topk_contributors.

#include <torch/extension.h>
#include <c10/cuda/CUDAStream.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>

#include <tuple>

namespace {

constexpr int kMaxK = 32;

__global__ void topk_contributors_kernel(const int C, const int N, const int width, const int height,
                                         const int tile_size, const int tile_w, const int tile_h,
                                         const float2 *__restrict__ means2d, const float3 *__restrict__ conics,
                                         const float *__restrict__ opacities, const int32_t *__restrict__ tile_offsets,
                                         const int32_t *__restrict__ flatten_ids, const int64_t n_isects, const int K,
                                         int64_t *__restrict__ out_ids, float *__restrict__ out_w) {
    const int cam = blockIdx.x;
    const int ty = blockIdx.y, tx = blockIdx.z;
    const int x = tx * tile_size + threadIdx.x;
    const int y = ty * tile_size + threadIdx.y;
    if (x >= width || y >= height) return;
    const int64_t tile = (static_cast<int64_t>(cam) * tile_h + ty) * tile_w + tx;
    const int64_t n_tiles = static_cast<int64_t>(C) * tile_h * tile_w;
    const int64_t start = tile_offsets[tile];
    const int64_t end = (tile + 1 < n_tiles) ? tile_offsets[tile + 1] : n_isects;

    float w_best[kMaxK];
    int64_t id_best[kMaxK];
    for (int i = 0; i < K; ++i) {
        w_best[i] = 0.f;
        id_best[i] = -1;
    }
    const float px = x + 0.5f, py = y + 0.5f;
    float T = 1.f;
    for (int64_t k = start; k < end; ++k) {
        const int32_t g = flatten_ids[k];
        const float2 m = means2d[g];
        const float3 c = conics[g];
        const float dx = m.x - px, dy = m.y - py;
        const float sigma = 0.5f * (c.x * dx * dx + c.z * dy * dy) + c.y * dx * dy;
        const float alpha = fminf(0.999f, opacities[g] * __expf(-sigma));
        if (sigma < 0.f || alpha < 1.f / 255.f) continue;
        const float next_T = T * (1.f - alpha);
        if (next_T <= 1e-4f) break;
        const float w = alpha * T;
        T = next_T;
        if (w <= w_best[K - 1]) continue;
        int pos = K - 1;
        while (pos > 0 && w_best[pos - 1] < w) {
            w_best[pos] = w_best[pos - 1];
            id_best[pos] = id_best[pos - 1];
            --pos;
        }
        w_best[pos] = w;
        id_best[pos] = g % N;
    }
    const int64_t pix = (static_cast<int64_t>(cam) * height + y) * width + x;
    for (int i = 0; i < K; ++i) {
        out_ids[pix * K + i] = id_best[i];
        out_w[pix * K + i] = w_best[i];
    }
}

}  // namespace

std::tuple<torch::Tensor, torch::Tensor> topk_contributors_cuda(const torch::Tensor &means2d,
                                                                const torch::Tensor &conics,
                                                                const torch::Tensor &opacities, int64_t width,
                                                                int64_t height, int64_t tile_size,
                                                                const torch::Tensor &tile_offsets,
                                                                const torch::Tensor &flatten_ids, int64_t K) {
    TORCH_CHECK(K >= 1 && K <= kMaxK, "topk K must be in [1, ", kMaxK, "] on CUDA");
    TORCH_CHECK(means2d.is_contiguous() && conics.is_contiguous() && opacities.is_contiguous(),
                "inputs must be contiguous");
    const c10::cuda::OptionalCUDAGuard guard(means2d.device());
    const int64_t C = means2d.size(0), N = means2d.size(1);
    const int64_t tile_h = tile_offsets.size(1), tile_w = tile_offsets.size(2);
    auto ids = torch::full({C, height, width, K}, -1, means2d.options().dtype(torch::kInt64));
    auto weights = torch::zeros({C, height, width, K}, means2d.options());
    if (C == 0 || height == 0 || width == 0) return {ids, weights};
    const dim3 blocks(C, tile_h, tile_w);
    const dim3 threads(tile_size, tile_size, 1);
    topk_contributors_kernel<<<blocks, threads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        C, N, width, height, tile_size, tile_w, tile_h, reinterpret_cast<const float2 *>(means2d.data_ptr<float>()),
        reinterpret_cast<const float3 *>(conics.data_ptr<float>()), opacities.data_ptr<float>(),
        tile_offsets.data_ptr<int32_t>(), flatten_ids.data_ptr<int32_t>(), flatten_ids.numel(), K,
        ids.data_ptr<int64_t>(), weights.data_ptr<float>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return {ids, weights};
}
