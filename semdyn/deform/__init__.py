"""semdyn.deform"""
