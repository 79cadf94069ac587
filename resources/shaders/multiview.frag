#version 330 core
// Synthetic skin, regions, two lights, optional speckle projector, exposure and gamma.
// Attachment 0: colour (luminance in .r when u_gray = 1); attachment 1: camera z in mm.
// Skin detail is 3D value noise at the CANONICAL position, so it sticks to the skin.
// Octaves finer than u_min_wavelength (about two pixel footprints) are skipped: no aliasing,
// and fewer noise evaluations at coarse scales.
// llvmpipe runs both sides of an `if` under a lane mask but leaves a loop as soon as no lane
// is active, so optional work is written as a loop that runs at most once (ONCE_IF): pixels
// away from hair or brows then skip the strand noise. (A 3D noise texture was slower than
// the hash on llvmpipe; silhouette masks use multiview_plain.frag.)
#define ONCE_IF(cond) for (int once_ = 0; once_ < 1 && (cond); once_++)

uniform int u_gray;
uniform vec3 u_eye;
uniform float u_min_wavelength;

uniform vec3 u_skin;
uniform float u_skin_var;
uniform float u_pore;
uniform float u_freckle_density;
uniform float u_freckle;
uniform vec3 u_noise_offset;
uniform vec3 u_brow;
uniform vec3 u_lip;
uniform vec3 u_iris;
uniform vec3 u_sclera;
uniform vec3 u_hair;

uniform vec3 u_key_dir;
uniform vec3 u_key_color;
uniform vec3 u_fill_dir;
uniform vec3 u_fill_color;
uniform vec3 u_ambient;
uniform float u_specular;
uniform float u_exposure;

uniform int u_speckle;
uniform mat4 u_projector;
uniform vec3 u_projector_pos;
uniform float u_speckle_gain;
uniform sampler2D u_speckle_tex;

in vec3 v_world;
in vec3 v_normal;
in vec3 v_canonical;
in vec4 v_material;
in float v_depth;

layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;

float hash3(vec3 p) {
    p = fract(p * 0.3183099 + vec3(0.71, 0.113, 0.419));
    p *= 17.0;
    return fract(p.x * p.y * p.z * (p.x + p.y + p.z));
}

// Value noise in [0, 1] with one lattice cell per unit of x.
float vnoise(vec3 x) {
    vec3 i = floor(x);
    vec3 f = fract(x);
    f = f * f * (3.0 - 2.0 * f);
    return mix(mix(mix(hash3(i), hash3(i + vec3(1, 0, 0)), f.x),
                   mix(hash3(i + vec3(0, 1, 0)), hash3(i + vec3(1, 1, 0)), f.x), f.y),
               mix(mix(hash3(i + vec3(0, 0, 1)), hash3(i + vec3(1, 0, 1)), f.x),
                   mix(hash3(i + vec3(0, 1, 1)), hash3(i + vec3(1, 1, 1)), f.x), f.y), f.z);
}

// Sum of octaves with wavelengths from `longest` (mm) halving down to u_min_wavelength;
// returns roughly zero-mean values in [-0.5, 0.5].
float fbm(vec3 p, float longest, int octaves) {
    float sum = 0.0;
    float norm = 0.0;
    float wl = longest;
    float amp = 1.0;
    for (int k = 0; k < octaves; k++) {
        if (wl < u_min_wavelength) break;
        // A different offset and axis order per octave hides the lattice's period.
        vec3 q = p / wl + float(k) * vec3(17.31, 5.77, 41.3);
        sum += amp * (vnoise(k % 2 == 0 ? q : q.zxy) - 0.5);
        norm += amp;
        wl *= 0.5;
        amp *= 0.8;
    }
    return norm > 0.0 ? sum / norm : 0.0;
}

void main() {
    f_depth = v_depth;
    vec3 p = v_canonical + u_noise_offset;
    // Skin: blotches and mottling (3-24 mm), freckles (~3 mm spots), pores (0.4-3 mm).
    float blotch = fbm(p, 24.0, 4);
    vec3 albedo = u_skin * (1.0 + 4.0 * u_skin_var * blotch);
    ONCE_IF(u_min_wavelength < 3.0) {
        float fr = vnoise(p / 2.5 + 31.7);
        float spot = smoothstep(1.0 - u_freckle_density, 1.0 - u_freckle_density + 0.1, fr);
        albedo *= 1.0 - u_freckle * spot * vec3(0.8, 1.0, 1.2);
    }
    float pores = fbm(p + 101.0, 3.0, 4);
    albedo *= 1.0 + 4.0 * u_pore * pores;
    float spec = u_specular;

    // Regions from the per-vertex weights.
    float brow = clamp(v_material.x, 0.0, 1.0);
    float lip = clamp(v_material.y, 0.0, 1.0);
    float eye = clamp(v_material.z, 0.0, 1.0);
    float hair = clamp(v_material.w, 0.0, 1.0);
    float strands = 0.5;
    ONCE_IF(brow + hair + eye > 0.0) {
        strands += fbm(vec3(p.x * 0.15, p.y * 2.0, p.z * 0.15), 6.0, 3);
    }
    albedo = mix(albedo, u_brow * (0.6 + 0.8 * strands), brow);
    albedo = mix(albedo, u_hair * (0.6 + 0.8 * strands), hair);
    albedo = mix(albedo, u_lip * (1.0 + 0.8 * pores), lip);
    vec3 eye_col = mix(u_sclera, u_iris * (0.8 + 0.4 * strands), smoothstep(0.45, 0.55, eye));
    eye_col = mix(eye_col, vec3(0.015), smoothstep(0.86, 0.9, eye));
    albedo = mix(albedo, eye_col, smoothstep(0.0, 0.15, eye));
    spec = mix(spec, 0.5, smoothstep(0.0, 0.15, eye));
    spec = mix(spec, 2.0 * u_specular + 0.05, lip);
    spec *= 1.0 - 0.8 * max(brow, hair);

    // Lighting in the world frame; back faces of open meshes are lit like front faces.
    vec3 n = normalize(gl_FrontFacing ? v_normal : -v_normal);
    vec3 view = normalize(u_eye - v_world);
    vec3 irr = u_ambient + u_key_color * max(dot(n, u_key_dir), 0.0)
               + u_fill_color * max(dot(n, u_fill_dir), 0.0);
    vec3 h = normalize(u_key_dir + view);
    float nh = max(dot(n, h), 0.0);
    float nh2 = nh * nh;
    float nh8 = nh2 * nh2;
    nh8 *= nh8;
    float nh32 = nh8 * nh8;
    nh32 *= nh32;
    vec3 radiance = albedo * irr + spec * u_key_color * (nh32 * nh8);  // pow(nh, 40), cheaper
    ONCE_IF(u_speckle == 1) {
        vec4 pc = u_projector * vec4(v_world, 1.0);
        if (pc.w > 0.0) {
            vec2 uv = pc.xy / pc.w * 0.5 + 0.5;
            if (all(greaterThanEqual(uv, vec2(0.0))) && all(lessThanEqual(uv, vec2(1.0)))) {
                vec3 lp = normalize(u_projector_pos - v_world);
                float s = texture(u_speckle_tex, uv).r;
                radiance += albedo * (u_speckle_gain * s * max(dot(n, lp), 0.0));
            }
        }
    }
    vec3 lin = radiance * u_exposure;
    float y = pow(clamp(dot(lin, vec3(0.299, 0.587, 0.114)), 0.0, 1.0), 1.0 / 2.2);
    vec3 c = vec3(y);
    ONCE_IF(u_gray == 0) {
        c = pow(clamp(lin, 0.0, 1.0), vec3(1.0 / 2.2));
    }
    f_color = vec4(c, 1.0);
}
