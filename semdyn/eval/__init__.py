"""semdyn.eval"""
