#version 330 core
// Two-light Lambert with ambient (u_lit = 1) or flat colour (u_lit = 0).
// Colour is the per-vertex colour when u_use_vertex_color = 1, else u_color.
// Light directions point towards the lights, in GL eye space, normalised.

uniform int u_lit;
uniform int u_use_vertex_color;
uniform vec3 u_color;
uniform vec3 u_key_dir;
uniform vec3 u_fill_dir;
uniform float u_key;
uniform float u_fill;
uniform float u_ambient;

in vec3 v_normal;
in vec3 v_color;
in float v_eye_z;

out vec4 f_color;

void main() {
    vec3 albedo = u_use_vertex_color == 1 ? v_color : u_color;
    if (u_lit == 0) {
        f_color = vec4(albedo, 1.0);
        return;
    }
    // Faces are counter-clockwise seen from outside; back faces (open meshes) light as front.
    vec3 n = normalize(gl_FrontFacing ? v_normal : -v_normal);
    float shade = u_ambient + u_key * max(dot(n, u_key_dir), 0.0)
                  + u_fill * max(dot(n, u_fill_dir), 0.0);
    f_color = vec4(min(albedo * shade, vec3(1.0)), 1.0);
}
