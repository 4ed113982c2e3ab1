/* yaml_tree.c: not written yet. */
