"""semdyn.semantics"""
