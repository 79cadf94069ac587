#version 330 core
// Mesh vertex shader: world-space positions (mm) and normals, per-vertex colours.
// u_mvp = projection @ view (composed in float64 on the CPU), u_view = world -> GL eye.

uniform mat4 u_mvp;
uniform mat4 u_view;

in vec3 in_position;
in vec3 in_normal;
in vec3 in_color;

out vec3 v_normal;  // GL eye space
out vec3 v_color;
out float v_eye_z;  // GL eye z (negative in front of the camera)

void main() {
    gl_Position = u_mvp * vec4(in_position, 1.0);
    v_normal = mat3(u_view) * in_normal;  // views are rigid, so no inverse-transpose needed
    v_color = in_color;
    v_eye_z = (u_view * vec4(in_position, 1.0)).z;
}
