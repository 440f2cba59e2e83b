"""semdyn.scene"""
