#version 330 core
// Multi-view renderer vertex shader. Positions and normals are world mm; u_mvp = canvas
// projection @ view (composed in float64 on the CPU); u_zrow = third row of [R | t], so
// v_depth is the OpenCV camera z (affine in the position: perspective-correct interpolation
// makes it exact per pixel).

uniform mat4 u_mvp;
uniform vec4 u_zrow;

in vec3 in_position;
in vec3 in_normal;
in vec3 in_canonical;
in vec4 in_material;

out vec3 v_world;
out vec3 v_normal;
out vec3 v_canonical;
out vec4 v_material;
out float v_depth;

void main() {
    gl_Position = u_mvp * vec4(in_position, 1.0);
    v_world = in_position;
    v_normal = in_normal;
    v_canonical = in_canonical;
    v_material = in_material;
    v_depth = dot(u_zrow.xyz, in_position) + u_zrow.w;
}
