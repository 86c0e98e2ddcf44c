"""What is iterated: the System protocol, looped blocks, affine loops and user maps."""
