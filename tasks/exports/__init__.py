"""Exports: any slice of one municipality's data, in the format people use, in bounded memory."""
