#version 330 core
// Flat white surface (silhouette masks) and camera z in mm, for the multi-view renderer.

in float v_depth;

layout(location = 0) out vec4 f_color;
layout(location = 1) out float f_depth;

void main() {
    f_color = vec4(1.0);
    f_depth = v_depth;
}
