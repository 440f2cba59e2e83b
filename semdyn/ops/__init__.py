"""semdyn.ops"""
