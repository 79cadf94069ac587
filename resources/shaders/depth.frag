#version 330 core
// Camera-space depth in mm (OpenCV z = -GL eye z) into a float colour attachment.

in vec3 v_normal;
in vec3 v_color;
in float v_eye_z;

out float f_depth;

void main() {
    f_depth = -v_eye_z;
}
