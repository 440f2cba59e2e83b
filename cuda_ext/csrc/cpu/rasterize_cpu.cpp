// CPU rasterisation of projected 2D Gaussians: tile binning, forward and backward compositing,
// and per-pixel top-k contributors. OpenMP over tiles.
//
// Semantics follow gsplat's CUDA rasteriser (classic 3DGS): pixel centres at (x + 0.5, y + 0.5),
// sigma = 0.5 * (a dx^2 + c dy^2) + b dx dy with conic (a, b, c) and d = mean2d - pixel,
// alpha = min(0.999, opacity * exp(-sigma)), Gaussians with sigma < 0 or alpha < 1/255 skipped,
// a pixel stops before the Gaussian that would bring its transmittance to 1e-4 or below.
// The pure-PyTorch reference is semdyn/ops/_torch_impl.py; tests compare the two.

#include <torch/extension.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <tuple>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

constexpr float kAlphaMin = 1.0f / 255.0f;
constexpr float kAlphaMax = 0.999f;
constexpr float kTransmittanceMin = 1e-4f;

int num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
    return omp_get_thread_num();
#else
    return 0;
#endif
}

void check_cpu_float(const torch::Tensor &t, const char *name) {
    TORCH_CHECK(t.device().is_cpu(), name, " must be a CPU tensor");
    TORCH_CHECK(t.scalar_type() == torch::kFloat32, name, " must be float32");
    TORCH_CHECK(t.is_contiguous(), name, " must be contiguous");
}

// One Gaussian's data gathered per tile, so the inner loop reads contiguous memory.
struct Splat {
    float mx, my;     // mean in pixels
    float a, b, c;    // conic
    float opacity;
    float log_thresh; // sigma above this gives alpha < 1/255 (log(255 * opacity))
    int32_t flat;     // c * N + n
};

inline void gather_tile(const int32_t *flatten_ids, int64_t start, int64_t end, const float *means2d,
                        const float *conics, const float *opacities, std::vector<Splat> &out) {
    out.resize(end - start);
    for (int64_t k = start; k < end; ++k) {
        const int32_t g = flatten_ids[k];
        Splat &s = out[k - start];
        s.mx = means2d[2 * g];
        s.my = means2d[2 * g + 1];
        s.a = conics[3 * g];
        s.b = conics[3 * g + 1];
        s.c = conics[3 * g + 2];
        s.opacity = opacities[g];
        s.log_thresh = s.opacity > 0.f ? std::log(255.f * s.opacity) : -1.f;
        s.flat = g;
    }
}

// Returns alpha for a pixel, or a negative value when the Gaussian is skipped there.
inline float splat_alpha(const Splat &s, float px, float py, float &dx, float &dy, float &vis) {
    dx = s.mx - px;
    dy = s.my - py;
    const float sigma = 0.5f * (s.a * dx * dx + s.c * dy * dy) + s.b * dx * dy;
    if (sigma < 0.f || sigma > s.log_thresh) return -1.f;
    vis = std::exp(-sigma);
    const float alpha = std::min(kAlphaMax, s.opacity * vis);
    if (alpha < kAlphaMin) return -1.f;
    return alpha;
}

struct TileGrid {
    int64_t C, tile_w, tile_h, tile_size, width, height;
    int64_t n_tiles() const { return C * tile_w * tile_h; }
};

}  // namespace

// Bins Gaussians into tiles and sorts each tile's list front to back.
// means2d [C, N, 2], radii [C, N] int32, depths [C, N] -> (tile_offsets [C, th, tw] int32,
// flatten_ids [M] int32 with values c * N + n). Same layout as gsplat's isect_tiles +
// isect_offset_encode, so the rasterisers and the top-k kernel accept either.
std::tuple<torch::Tensor, torch::Tensor> isect_tiles_cpu(const torch::Tensor &means2d, const torch::Tensor &radii,
                                                         const torch::Tensor &depths, int64_t tile_size, int64_t tile_w,
                                                         int64_t tile_h) {
    check_cpu_float(means2d, "means2d");
    check_cpu_float(depths, "depths");
    TORCH_CHECK(radii.scalar_type() == torch::kInt32 && radii.is_contiguous(), "radii must be contiguous int32");
    const int64_t C = means2d.size(0), N = means2d.size(1);
    const int64_t n_tiles = C * tile_w * tile_h;
    const float *m = means2d.data_ptr<float>();
    const int32_t *r = radii.data_ptr<int32_t>();
    const float *d = depths.data_ptr<float>();

    // Tile rectangle of every Gaussian, then counting sort by tile.
    std::vector<int32_t> rect(C * N * 4, 0);
    std::vector<int64_t> counts(n_tiles + 1, 0);
    const float inv = 1.0f / static_cast<float>(tile_size);
    for (int64_t g = 0; g < C * N; ++g) {
        if (r[g] <= 0) continue;
        const float tx = m[2 * g] * inv, ty = m[2 * g + 1] * inv, tr = static_cast<float>(r[g]) * inv;
        const int32_t x0 = static_cast<int32_t>(std::min<float>(std::max<float>(std::floor(tx - tr), 0.f), tile_w));
        const int32_t x1 = static_cast<int32_t>(std::min<float>(std::max<float>(std::ceil(tx + tr), 0.f), tile_w));
        const int32_t y0 = static_cast<int32_t>(std::min<float>(std::max<float>(std::floor(ty - tr), 0.f), tile_h));
        const int32_t y1 = static_cast<int32_t>(std::min<float>(std::max<float>(std::ceil(ty + tr), 0.f), tile_h));
        int32_t *q = &rect[4 * g];
        q[0] = x0; q[1] = x1; q[2] = y0; q[3] = y1;
        const int64_t cam = g / N;
        for (int32_t y = y0; y < y1; ++y)
            for (int32_t x = x0; x < x1; ++x) counts[cam * tile_w * tile_h + y * tile_w + x + 1]++;
    }
    std::partial_sum(counts.begin(), counts.end(), counts.begin());
    const int64_t M = counts[n_tiles];
    auto flatten = torch::empty({M}, torch::dtype(torch::kInt32));
    int32_t *f = flatten.data_ptr<int32_t>();
    std::vector<int64_t> cursor(counts.begin(), counts.end() - 1);
    for (int64_t g = 0; g < C * N; ++g) {
        if (r[g] <= 0) continue;
        const int32_t *q = &rect[4 * g];
        const int64_t cam = g / N;
        for (int32_t y = q[2]; y < q[3]; ++y)
            for (int32_t x = q[0]; x < q[1]; ++x) f[cursor[cam * tile_w * tile_h + y * tile_w + x]++] = g;
    }
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t t = 0; t < n_tiles; ++t) {
        std::stable_sort(f + counts[t], f + counts[t + 1], [d](int32_t i, int32_t j) { return d[i] < d[j]; });
    }
    auto offsets = torch::empty({C, tile_h, tile_w}, torch::dtype(torch::kInt32));
    int32_t *o = offsets.data_ptr<int32_t>();
    for (int64_t t = 0; t < n_tiles; ++t) o[t] = static_cast<int32_t>(counts[t]);
    return {offsets, flatten};
}

// Forward compositing. colors [C, N, D], opacities [C, N], backgrounds [C, D] or empty.
// Returns (render [C, H, W, D], alpha [C, H, W, 1], last_ids [C, H, W] int32: one past the index
// into flatten_ids of the last Gaussian composited, used by the backward pass).
std::tuple<torch::Tensor, torch::Tensor, torch::Tensor> rasterize_fwd_cpu(
    const torch::Tensor &means2d, const torch::Tensor &conics, const torch::Tensor &colors,
    const torch::Tensor &opacities, const torch::Tensor &backgrounds, int64_t width, int64_t height,
    int64_t tile_size, const torch::Tensor &tile_offsets, const torch::Tensor &flatten_ids) {
    check_cpu_float(means2d, "means2d");
    check_cpu_float(conics, "conics");
    check_cpu_float(colors, "colors");
    check_cpu_float(opacities, "opacities");
    const int64_t C = means2d.size(0), D = colors.size(2);
    const TileGrid grid{C, tile_offsets.size(2), tile_offsets.size(1), tile_size, width, height};
    const bool has_bg = backgrounds.numel() > 0;
    auto render = torch::zeros({C, height, width, D}, torch::dtype(torch::kFloat32));
    auto alpha = torch::zeros({C, height, width, 1}, torch::dtype(torch::kFloat32));
    auto last = torch::zeros({C, height, width}, torch::dtype(torch::kInt32));
    const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *col = colors.data_ptr<float>();
    const float *op = opacities.data_ptr<float>();
    const float *bg = has_bg ? backgrounds.data_ptr<float>() : nullptr;
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *fid = flatten_ids.data_ptr<int32_t>();
    const int64_t M = flatten_ids.numel();
    float *out = render.data_ptr<float>(), *out_a = alpha.data_ptr<float>();
    int32_t *out_last = last.data_ptr<int32_t>();

#pragma omp parallel
    {
        std::vector<Splat> splats;
        std::vector<float> acc(D);
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < grid.n_tiles(); ++t) {
            const int64_t cam = t / (grid.tile_w * grid.tile_h);
            const int64_t ty = (t / grid.tile_w) % grid.tile_h, tx = t % grid.tile_w;
            const int64_t start = off[t], end = (t + 1 < grid.n_tiles()) ? off[t + 1] : M;
            gather_tile(fid, start, end, m, cn, op, splats);
            for (int64_t y = ty * tile_size; y < std::min(height, (ty + 1) * tile_size); ++y) {
                for (int64_t x = tx * tile_size; x < std::min(width, (tx + 1) * tile_size); ++x) {
                    const float px = x + 0.5f, py = y + 0.5f;
                    float T = 1.f;
                    int64_t cur = start;
                    std::fill(acc.begin(), acc.end(), 0.f);
                    for (int64_t k = 0; k < end - start; ++k) {
                        float dx, dy, vis;
                        const float a = splat_alpha(splats[k], px, py, dx, dy, vis);
                        if (a < 0.f) continue;
                        const float next_T = T * (1.f - a);
                        if (next_T <= kTransmittanceMin) break;
                        const float w = a * T;
                        const float *c = col + static_cast<int64_t>(splats[k].flat) * D;
                        for (int64_t ch = 0; ch < D; ++ch) acc[ch] += w * c[ch];
                        T = next_T;
                        cur = start + k + 1;
                    }
                    const int64_t pix = (cam * height + y) * width + x;
                    for (int64_t ch = 0; ch < D; ++ch) out[pix * D + ch] = acc[ch] + (has_bg ? T * bg[cam * D + ch] : 0.f);
                    out_a[pix] = 1.f - T;
                    out_last[pix] = static_cast<int32_t>(cur);
                }
            }
        }
    }
    return {render, alpha, last};
}

// Backward compositing. v_render [C, H, W, D], v_alpha [C, H, W, 1]. Returns gradients
// (v_means2d [C, N, 2], v_conics [C, N, 3], v_colors [C, N, D], v_opacities [C, N], v_backgrounds [C, D]).
// Each thread accumulates into its own buffer; the buffers are summed at the end.
std::vector<torch::Tensor> rasterize_bwd_cpu(const torch::Tensor &means2d, const torch::Tensor &conics,
                                             const torch::Tensor &colors, const torch::Tensor &opacities,
                                             const torch::Tensor &backgrounds, int64_t width, int64_t height,
                                             int64_t tile_size, const torch::Tensor &tile_offsets,
                                             const torch::Tensor &flatten_ids, const torch::Tensor &render_alpha,
                                             const torch::Tensor &last_ids, const torch::Tensor &v_render,
                                             const torch::Tensor &v_alpha) {
    check_cpu_float(v_render, "v_render");
    check_cpu_float(v_alpha, "v_alpha");
    const int64_t C = means2d.size(0), N = means2d.size(1), D = colors.size(2);
    const TileGrid grid{C, tile_offsets.size(2), tile_offsets.size(1), tile_size, width, height};
    const bool has_bg = backgrounds.numel() > 0;
    const int nt = num_threads();
    // Per-thread gradient buffer layout per Gaussian: [mean2d(2), conic(3), opacity(1), color(D)].
    const int64_t stride = 6 + D;
    std::vector<std::vector<float>> bufs(nt);
    std::vector<std::vector<float>> bg_bufs(nt, std::vector<float>(C * D, 0.f));
    const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *col = colors.data_ptr<float>();
    const float *op = opacities.data_ptr<float>();
    const float *bg = has_bg ? backgrounds.data_ptr<float>() : nullptr;
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *fid = flatten_ids.data_ptr<int32_t>();
    const int32_t *lst = last_ids.data_ptr<int32_t>();
    const float *ra = render_alpha.data_ptr<float>(), *vr = v_render.data_ptr<float>(), *va = v_alpha.data_ptr<float>();
    const int64_t M = flatten_ids.numel();

#pragma omp parallel
    {
        const int tid = thread_id();
        std::vector<float> &buf = bufs[tid];
        buf.assign(C * N * stride, 0.f);
        std::vector<float> &bgb = bg_bufs[tid];
        std::vector<Splat> splats;
        std::vector<float> behind(D);
// Static round-robin tiles: each thread always gets the same tiles, so the sums are reproducible.
#pragma omp for schedule(static, 1)
        for (int64_t t = 0; t < grid.n_tiles(); ++t) {
            const int64_t cam = t / (grid.tile_w * grid.tile_h);
            const int64_t ty = (t / grid.tile_w) % grid.tile_h, tx = t % grid.tile_w;
            const int64_t start = off[t], end = (t + 1 < grid.n_tiles()) ? off[t + 1] : M;
            gather_tile(fid, start, end, m, cn, op, splats);
            for (int64_t y = ty * tile_size; y < std::min(height, (ty + 1) * tile_size); ++y) {
                for (int64_t x = tx * tile_size; x < std::min(width, (tx + 1) * tile_size); ++x) {
                    const int64_t pix = (cam * height + y) * width + x;
                    const float px = x + 0.5f, py = y + 0.5f;
                    const float T_final = 1.f - ra[pix];
                    const float *g = vr + pix * D;
                    const float g_a = va[pix];
                    float bg_dot = 0.f;
                    if (has_bg) {
                        for (int64_t ch = 0; ch < D; ++ch) {
                            bg_dot += g[ch] * bg[cam * D + ch];
                            bgb[cam * D + ch] += T_final * g[ch];
                        }
                    }
                    std::fill(behind.begin(), behind.end(), 0.f);
                    float T = T_final;
                    for (int64_t k = lst[pix] - 1 - start; k >= 0; --k) {
                        const Splat &s = splats[k];
                        float dx, dy, vis;
                        const float a = splat_alpha(s, px, py, dx, dy, vis);
                        if (a < 0.f) continue;
                        const float inv_one_minus_a = 1.f / (1.f - a);
                        T *= inv_one_minus_a;  // transmittance in front of this Gaussian
                        const float w = a * T;
                        const float *c = col + static_cast<int64_t>(s.flat) * D;
                        float *gb = buf.data() + static_cast<int64_t>(s.flat) * stride;
                        float v_a = 0.f;
                        for (int64_t ch = 0; ch < D; ++ch) {
                            gb[6 + ch] += w * g[ch];
                            v_a += (c[ch] * T - behind[ch] * inv_one_minus_a) * g[ch];
                            behind[ch] += c[ch] * w;
                        }
                        v_a += T_final * inv_one_minus_a * g_a;
                        v_a -= T_final * inv_one_minus_a * bg_dot;
                        if (s.opacity * vis <= kAlphaMax) {
                            const float v_sigma = -s.opacity * vis * v_a;
                            gb[0] += v_sigma * (s.a * dx + s.b * dy);
                            gb[1] += v_sigma * (s.b * dx + s.c * dy);
                            gb[2] += 0.5f * v_sigma * dx * dx;
                            gb[3] += v_sigma * dx * dy;
                            gb[4] += 0.5f * v_sigma * dy * dy;
                            gb[5] += vis * v_a;
                        }
                    }
                }
            }
        }
    }
    auto v_means2d = torch::zeros({C, N, 2}, torch::dtype(torch::kFloat32));
    auto v_conics = torch::zeros({C, N, 3}, torch::dtype(torch::kFloat32));
    auto v_colors = torch::zeros({C, N, D}, torch::dtype(torch::kFloat32));
    auto v_opac = torch::zeros({C, N}, torch::dtype(torch::kFloat32));
    auto v_bg = torch::zeros({C, D}, torch::dtype(torch::kFloat32));
    float *pm = v_means2d.data_ptr<float>(), *pc = v_conics.data_ptr<float>(), *pcol = v_colors.data_ptr<float>();
    float *po = v_opac.data_ptr<float>(), *pbg = v_bg.data_ptr<float>();
#pragma omp parallel for schedule(static)
    for (int64_t gi = 0; gi < C * N; ++gi) {
        for (int th = 0; th < nt; ++th) {
            if (bufs[th].empty()) continue;
            const float *b = bufs[th].data() + gi * stride;
            pm[2 * gi] += b[0];
            pm[2 * gi + 1] += b[1];
            pc[3 * gi] += b[2];
            pc[3 * gi + 1] += b[3];
            pc[3 * gi + 2] += b[4];
            po[gi] += b[5];
            for (int64_t ch = 0; ch < D; ++ch) pcol[gi * D + ch] += b[6 + ch];
        }
    }
    for (int th = 0; th < nt; ++th)
        for (int64_t i = 0; i < C * D; ++i) pbg[i] += bg_bufs[th][i];
    return {v_means2d, v_conics, v_colors, v_opac, v_bg};
}

// Per-pixel top-k contributors: the k Gaussians with the largest blend weight w = alpha * T.
// Returns (ids [C, H, W, K] int64, Gaussian index n in [0, N) or -1; weights [C, H, W, K] float32),
// sorted by weight, largest first.
std::tuple<torch::Tensor, torch::Tensor> topk_contributors_cpu(const torch::Tensor &means2d,
                                                               const torch::Tensor &conics,
                                                               const torch::Tensor &opacities, int64_t width,
                                                               int64_t height, int64_t tile_size,
                                                               const torch::Tensor &tile_offsets,
                                                               const torch::Tensor &flatten_ids, int64_t K) {
    check_cpu_float(means2d, "means2d");
    check_cpu_float(conics, "conics");
    check_cpu_float(opacities, "opacities");
    const int64_t C = means2d.size(0), N = means2d.size(1);
    const TileGrid grid{C, tile_offsets.size(2), tile_offsets.size(1), tile_size, width, height};
    auto ids = torch::full({C, height, width, K}, -1, torch::dtype(torch::kInt64));
    auto weights = torch::zeros({C, height, width, K}, torch::dtype(torch::kFloat32));
    const float *m = means2d.data_ptr<float>(), *cn = conics.data_ptr<float>(), *op = opacities.data_ptr<float>();
    const int32_t *off = tile_offsets.data_ptr<int32_t>(), *fid = flatten_ids.data_ptr<int32_t>();
    const int64_t M = flatten_ids.numel();
    int64_t *out_ids = ids.data_ptr<int64_t>();
    float *out_w = weights.data_ptr<float>();

#pragma omp parallel
    {
        std::vector<Splat> splats;
#pragma omp for schedule(dynamic, 1)
        for (int64_t t = 0; t < grid.n_tiles(); ++t) {
            const int64_t cam = t / (grid.tile_w * grid.tile_h);
            const int64_t ty = (t / grid.tile_w) % grid.tile_h, tx = t % grid.tile_w;
            const int64_t start = off[t], end = (t + 1 < grid.n_tiles()) ? off[t + 1] : M;
            gather_tile(fid, start, end, m, cn, op, splats);
            for (int64_t y = ty * tile_size; y < std::min(height, (ty + 1) * tile_size); ++y) {
                for (int64_t x = tx * tile_size; x < std::min(width, (tx + 1) * tile_size); ++x) {
                    const int64_t pix = (cam * height + y) * width + x;
                    int64_t *pid = out_ids + pix * K;
                    float *pw = out_w + pix * K;
                    const float px = x + 0.5f, py = y + 0.5f;
                    float T = 1.f;
                    for (int64_t k = 0; k < end - start; ++k) {
                        float dx, dy, vis;
                        const float a = splat_alpha(splats[k], px, py, dx, dy, vis);
                        if (a < 0.f) continue;
                        const float next_T = T * (1.f - a);
                        if (next_T <= kTransmittanceMin) break;
                        const float w = a * T;
                        T = next_T;
                        if (w <= pw[K - 1]) continue;
                        // Insert into the descending list; ties keep the earlier (nearer) Gaussian first.
                        int64_t pos = K - 1;
                        while (pos > 0 && pw[pos - 1] < w) {
                            pw[pos] = pw[pos - 1];
                            pid[pos] = pid[pos - 1];
                            --pos;
                        }
                        pw[pos] = w;
                        pid[pos] = splats[k].flat % N;
                    }
                }
            }
        }
    }
    return {ids, weights};
}

#ifdef SEMDYN_WITH_CUDA
std::tuple<torch::Tensor, torch::Tensor> topk_contributors_cuda(const torch::Tensor &means2d,
                                                                const torch::Tensor &conics,
                                                                const torch::Tensor &opacities, int64_t width,
                                                                int64_t height, int64_t tile_size,
                                                                const torch::Tensor &tile_offsets,
                                                                const torch::Tensor &flatten_ids, int64_t K);
#endif

std::tuple<torch::Tensor, torch::Tensor> topk_contributors(const torch::Tensor &means2d, const torch::Tensor &conics,
                                                           const torch::Tensor &opacities, int64_t width,
                                                           int64_t height, int64_t tile_size,
                                                           const torch::Tensor &tile_offsets,
                                                           const torch::Tensor &flatten_ids, int64_t K) {
    if (means2d.is_cuda()) {
#ifdef SEMDYN_WITH_CUDA
        return topk_contributors_cuda(means2d, conics, opacities, width, height, tile_size, tile_offsets,
                                      flatten_ids, K);
#else
        TORCH_CHECK(false, "semdyn's extension was built without CUDA");
#endif
    }
    return topk_contributors_cpu(means2d, conics, opacities, width, height, tile_size, tile_offsets, flatten_ids, K);
}

bool built_with_cuda() {
#ifdef SEMDYN_WITH_CUDA
    return true;
#else
    return false;
#endif
}

PYBIND11_MODULE(TORCH_EXTENSION_NAME, mod) {
    mod.def("isect_tiles_cpu", &isect_tiles_cpu, "Bin 2D Gaussians into tiles, sorted by depth (CPU)");
    mod.def("rasterize_fwd_cpu", &rasterize_fwd_cpu, "Alpha-composite 2D Gaussians (CPU forward)");
    mod.def("rasterize_bwd_cpu", &rasterize_bwd_cpu, "Alpha-composite 2D Gaussians (CPU backward)");
    mod.def("topk_contributors", &topk_contributors, "Per-pixel top-k contributors (CPU or CUDA)");
    mod.def("built_with_cuda", &built_with_cuda, "Whether the CUDA kernels were compiled in");
}
